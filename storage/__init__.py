"""Everything that talks to PostgreSQL. The gateway uses only the names exported here."""

from .broadcasts import Audience, Broadcast, BroadcastOutcome, get_broadcast, import_people, send_broadcast
from .embedded import EmbeddedPostgres
from .errors import Conflict, MigrationError, StorageError, StorageUnavailable
from .listener import BroadcastNotice, Listener, Notice, QueueNotice, WorkspaceNotice
from .messages import (
    NOTIFY_CHANNEL,
    DeviceReport,
    SendOutcome,
    claim_messages,
    expire_messages,
    get_message,
    list_message_events,
    list_person_messages,
    recall_message,
    record_device_events,
    send_message,
)
from .migrate import apply_migrations
from .models import Claim, DeliveredMessage, Event, Message, Person, Workspace, WorkspaceCredentials
from .people import get_person, identify_person
from .pool import create_pool
from .probe import check_ready
from .workspaces import (
    create_workspace,
    get_workspace_by_api_key,
    get_workspace_by_name,
    get_workspace_by_site_id,
    update_workspace,
)

__all__ = [
    "NOTIFY_CHANNEL",
    "Audience",
    "Broadcast",
    "BroadcastNotice",
    "BroadcastOutcome",
    "Claim",
    "Conflict",
    "DeliveredMessage",
    "DeviceReport",
    "EmbeddedPostgres",
    "Event",
    "Listener",
    "Message",
    "MigrationError",
    "Notice",
    "Person",
    "QueueNotice",
    "SendOutcome",
    "StorageError",
    "StorageUnavailable",
    "Workspace",
    "WorkspaceCredentials",
    "WorkspaceNotice",
    "apply_migrations",
    "check_ready",
    "claim_messages",
    "create_pool",
    "create_workspace",
    "expire_messages",
    "get_broadcast",
    "get_message",
    "get_person",
    "get_workspace_by_api_key",
    "get_workspace_by_name",
    "get_workspace_by_site_id",
    "identify_person",
    "import_people",
    "list_message_events",
    "list_person_messages",
    "recall_message",
    "record_device_events",
    "send_broadcast",
    "send_message",
    "update_workspace",
]
