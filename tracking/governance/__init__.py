"""Who may do what: accounts, roles and sign-in sessions, the permission check behind every change, and the
hash-chained audit trail.
"""

from __future__ import annotations

from tracking.governance._access import (
    DESCRIPTIONS,
    PERMISSIONS,
    ROLE_LABELS,
    Action,
    UserRecord,
    authenticate,
    authorize,
    create_user,
    get_user,
    has_accounts,
    list_users,
    local_actor,
    require,
    reset_password,
    session_user,
    set_disabled,
    set_role,
    sign_in,
    sign_out,
    why_not,
)
from tracking.governance._audit import (
    AuditRecord,
    canonical,
    events_csv,
    list_events,
    record,
    verify_chain,
)

__all__ = [
    "DESCRIPTIONS",
    "PERMISSIONS",
    "ROLE_LABELS",
    "Action",
    "AuditRecord",
    "UserRecord",
    "authenticate",
    "authorize",
    "canonical",
    "create_user",
    "events_csv",
    "get_user",
    "has_accounts",
    "list_events",
    "list_users",
    "local_actor",
    "record",
    "require",
    "reset_password",
    "session_user",
    "set_disabled",
    "set_role",
    "sign_in",
    "sign_out",
    "verify_chain",
    "why_not",
]
