"""`python -m mailer.cli`: how `mailer run` starts its worker and cron processes."""

from mailer.cli import main

main()
