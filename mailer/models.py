"""Every model, imported once so that `Base.metadata` is complete (Alembic, tests)."""

from mailer.accounts.models import ApiKey, Role, User
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import Base
from mailer.delivery.models import (
    MessageKind,
    MessageStatus,
    OutboundMessage,
    Suppression,
    SuppressionReason,
)
from mailer.emails.models import CompiledTemplate
from mailer.subscribers.models import (
    Form,
    FormVersion,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)

__all__ = [
    "ApiKey",
    "Base",
    "CompiledTemplate",
    "ConsentEvent",
    "ConsentEventType",
    "ConsentSource",
    "Form",
    "FormVersion",
    "MessageKind",
    "MessageStatus",
    "OutboundMessage",
    "Role",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
    "Suppression",
    "SuppressionReason",
    "Topic",
    "User",
]
