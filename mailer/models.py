"""Every model, imported once so that `Base.metadata` is complete (Alembic, tests)."""

from mailer.accounts.models import ApiKey, Role, User
from mailer.campaigns.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Template,
)
from mailer.compliance.models import StaffAccess
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
from mailer.segments.models import Segment
from mailer.settings.models import SettingChange, SettingValue, StoredDkimKey
from mailer.subscribers.import_models import ImportStatus, SubscriberImport
from mailer.subscribers.models import (
    Form,
    FormVersion,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from mailer.tracking.models import (
    Bounce,
    BounceKind,
    BounceSource,
    EventKind,
    TrackingEvent,
)

__all__ = [
    "ApiKey",
    "Base",
    "Bounce",
    "BounceKind",
    "BounceSource",
    "Campaign",
    "CampaignStatus",
    "CompiledTemplate",
    "ConsentEvent",
    "ConsentEventType",
    "ConsentSource",
    "Delivery",
    "DeliveryStatus",
    "EventKind",
    "Form",
    "FormVersion",
    "ImportStatus",
    "MessageKind",
    "MessageStatus",
    "OutboundMessage",
    "Role",
    "Segment",
    "SettingChange",
    "SettingValue",
    "StaffAccess",
    "StoredDkimKey",
    "Subscriber",
    "SubscriberImport",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
    "Suppression",
    "SuppressionReason",
    "Template",
    "Topic",
    "TrackingEvent",
    "User",
]
