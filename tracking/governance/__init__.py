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
    open_session,
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
from tracking.governance._tickets import TICKET_SECONDS, issue_sign_in_ticket, redeem_sign_in_ticket

__all__ = [
    "DESCRIPTIONS",
    "PERMISSIONS",
    "ROLE_LABELS",
    "TICKET_SECONDS",
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
    "issue_sign_in_ticket",
    "list_events",
    "list_users",
    "local_actor",
    "open_session",
    "record",
    "redeem_sign_in_ticket",
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
