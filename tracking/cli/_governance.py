"""The CLI's accounts, audit and registry commands (`users`, `audit`, `registry`).

Who acts is read from `TRACKING_USER` and `TRACKING_PASSWORD` (asked on the terminal when only the
name is set), else from the access token in `TRACKING_TOKEN`; the library checks the account's role for
every change, as it does for the pages.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime
from typing import Any

from tracking._errors import PermissionDenied, ValidationError
from tracking._settings import setting
from tracking.cli._args import record_id
from tracking.governance import (
    actor_from_env,
    authenticate,
    create_user,
    events_csv,
    has_accounts,
    list_events,
    list_users,
    reset_password,
    set_disabled,
    set_role,
    verify_chain,
)
from tracking.production import card_html, card_markdown, model_card
from tracking.registry import (
    approve_promotion,
    effective_policy,
    find_version,
    gate_state,
    get_model,
    list_models,
    list_requests,
    list_versions,
    read_policy_file,
    register_version,
    reject_promotion,
    request_promotion,
    set_policy,
    set_stage,
    withdraw_promotion,
)
from tracking.store import anchor_line


def cli_actor(store: Any) -> Any:
    """The account named by TRACKING_USER, authenticated; else the account of TRACKING_TOKEN's access token;
    None when neither is set (or the store has no accounts and no name is given)."""
    name = setting("TRACKING_USER")
    if not name:
        return actor_from_env(store)
    password = setting("TRACKING_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise PermissionDenied(f"Set TRACKING_PASSWORD to act as {name!r} (or run on a terminal to be asked).")
        password = getpass.getpass(f"password for {name}: ")
    return authenticate(store, name, password)


def _read_password(from_stdin: bool, name: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValidationError("No password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PW\" | ...`.")
        return password
    if not sys.stdin.isatty():
        raise ValidationError("Give the new password with --password-stdin (no terminal to ask on).")
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("repeat it: ") != first:
        raise ValidationError("The two passwords differ; nothing was changed.")
    return first


def add_parsers(sub: Any, store: argparse.ArgumentParser) -> None:
    """Add the `users`, `audit` and `registry` commands to the top-level subparsers."""
    users = sub.add_parser("users", help="accounts and roles (admins; the first account needs no sign-in)")
    users_sub = users.add_subparsers(dest="users_command", required=True, parser_class=type(users))
    add = users_sub.add_parser("add", parents=[store], help="create an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="viewer, data_scientist, engineer, product_owner or admin")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    listing = users_sub.add_parser("list", parents=[store], help="list accounts")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    role = users_sub.add_parser("set-role", parents=[store], help="change an account's role")
    role.add_argument("name")
    role.add_argument("role")
    disable = users_sub.add_parser("disable", parents=[store], help="disable an account (ends its sessions)")
    disable.add_argument("name")
    enable = users_sub.add_parser("enable", parents=[store], help="enable a disabled account")
    enable.add_argument("name")
    reset = users_sub.add_parser("reset-password", parents=[store], help="set a new password")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    audit = sub.add_parser("audit", help="the audit trail: verify its hash chain, list or export events")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, parser_class=type(audit))
    verify = audit_sub.add_parser(
        "verify", parents=[store], help="detect edited, inserted, deleted, reordered, truncated or emptied trails"
    )
    verify.add_argument("--anchor", action="append", default=[], metavar="FILE",
                        help="also compare with this file of saved `audit anchor` lines (repeatable)")  # fmt: skip
    audit_sub.add_parser(
        "anchor", parents=[store], help="verify, then print the head as one line for an outside record"
    )
    events = audit_sub.add_parser("list", parents=[store], help="list events, newest first")
    events.add_argument("--actor")
    events.add_argument("--action", help="an action, or a prefix ending in '.' such as 'promotion.'")
    events.add_argument("--object-type", help="e.g. model_version, promotion_request, sweep, user")
    events.add_argument("--object-id")
    events.add_argument("--since", metavar="ISO", help="e.g. 2026-11-01 or 2026-11-01T12:00")
    events.add_argument("--until", metavar="ISO")
    events.add_argument("--limit", type=int)
    events.add_argument("--format", choices=("table", "csv", "json"), default="table")

    registry = sub.add_parser("registry", help="registered models, versions, promotion requests, policies")
    reg = registry.add_subparsers(dest="registry_command", required=True, parser_class=type(registry))
    reg.add_parser("list", parents=[store], help="registered models")
    versions = reg.add_parser("versions", parents=[store], help="a registered model's versions")
    versions.add_argument("model")
    register = reg.add_parser("register", parents=[store], help="register a run's model as a new version")
    register.add_argument("run", type=record_id, metavar="RUN")
    register.add_argument("--name", required=True, metavar="MODEL", help="registered model name")
    register.add_argument("--description", default="")
    stage = reg.add_parser("stage", parents=[store], help="move a version to staging, archived or none")
    stage.add_argument("model")
    stage.add_argument("version", type=record_id)
    stage.add_argument("stage", choices=("none", "staging", "archived"))
    request = reg.add_parser("request", parents=[store], help="request promotion of a version to production")
    request.add_argument("model")
    request.add_argument("version", type=record_id)
    request.add_argument("--justification", required=True)
    requests = reg.add_parser("requests", parents=[store], help="promotion requests with their gate results")
    requests.add_argument("--status", choices=("pending", "approved", "rejected", "withdrawn", "stale"))
    requests.add_argument("--format", choices=("table", "json"), default="table")
    for name, text in (("approve", "approve a pending request"), ("reject", "reject a pending request")):
        decide = reg.add_parser(name, parents=[store], help=text)
        decide.add_argument("request", type=record_id, metavar="REQUEST")
        decide.add_argument("--comment", required=True)
        if name == "approve":
            decide.add_argument("--override", metavar="JUSTIFICATION", help="admins: approve despite failed gates")
    withdraw = reg.add_parser("withdraw", parents=[store], help="withdraw a pending request")
    withdraw.add_argument("request", type=record_id, metavar="REQUEST")
    policy = reg.add_parser("policy", parents=[store], help="show or set a registered model's promotion policy")
    policy.add_argument("model")
    policy.add_argument("--file", metavar="FILE", help="a YAML or JSON policy to set (admins)")
    policy.add_argument("--reset", action="store_true", help="go back to the default policy (admins)")
    card = reg.add_parser("card", parents=[store], help="a version's model card as Markdown or HTML")
    card.add_argument("model")
    card.add_argument("version", type=record_id)
    card.add_argument("--format", choices=("markdown", "html"), default="markdown")
    card.add_argument("--output", metavar="FILE", help="write to a file instead of standard output")


def cmd_users(args: argparse.Namespace, store: Any, print_table: Any) -> int:
    command = args.users_command
    if command == "list":
        rows = [{"name": u.name, "role": u.role, "disabled": u.disabled, "created_at": u.created_at.isoformat()}
                for u in list_users(store)]  # fmt: skip
        print(json.dumps(rows, indent=2)) if args.format == "json" else print_table(rows)
        return 0
    if command == "add":
        password = _read_password(args.password_stdin, args.name)
        actor = cli_actor(store) if has_accounts(store) else None
        user = create_user(store, actor, args.name, args.role, password)
        print(f"account {user.name} created ({user.role_label})")
    elif command == "set-role":
        user = set_role(store, cli_actor(store), args.name, args.role)
        print(f"{user.name} is now a {user.role_label}")
    elif command in ("disable", "enable"):
        user = set_disabled(store, cli_actor(store), args.name, command == "disable")
        print(f"{user.name} {'disabled' if user.disabled else 'enabled'}")
    else:
        password = _read_password(args.password_stdin, args.name)
        reset_password(store, cli_actor(store), args.name, password)
        print(f"password of {args.name} changed; its sessions ended")
    return 0


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not an ISO date or time such as 2026-11-01T12:00.") from None


def cmd_audit(args: argparse.Namespace, store: Any, print_table: Any) -> int:
    if args.audit_command in ("verify", "anchor"):
        report = verify_chain(store, anchors=getattr(args, "anchor", None) or ())
        if not report.ok:
            for problem in report.problems:
                print(f"TAMPERED: {problem}", file=sys.stderr)
            print(f"audit trail FAILED verification ({len(report.problems)} problem(s) in {report.checked} events)")
            return 1
        if args.audit_command == "anchor":
            sys.stdout.write(anchor_line(report.store_id, report.seq, report.head))
            return 0
        print(f"audit trail verified: {report.checked} events, head {report.head}")
        if report.legacy:
            print(f"  {report.legacy} unauthenticated legacy events (1 to {report.legacy}, recorded before the "
                  "store had an audit key): their hash chain is checked, not their authorship")  # fmt: skip
        if report.anchors:
            print(f"  matches the anchor {', '.join(report.anchors)} (up to event {report.anchored})")
        else:
            print("  no anchor outside the database (set TRACKING_STORE_ANCHOR): events removed at the end "
                  "with the head moved back cannot be detected")  # fmt: skip
        return 0
    events = list_events(store, actor=args.actor, action=args.action, object_type=args.object_type,
                         object_id=args.object_id, since=_when(args.since), until=_when(args.until),
                         limit=args.limit)  # fmt: skip
    if args.format == "csv":
        sys.stdout.write(events_csv(events))
    elif args.format == "json":
        print(json.dumps([e.__dict__ for e in events], indent=2))
    else:
        print_table([{"seq": e.seq, "at": e.recorded_at[:19], "actor": e.actor, "action": e.action,
                      "object": f"{e.object_type} {e.object_id}", "after": json.dumps(e.after)[:60]}
                     for e in events])  # fmt: skip
    return 0


def cmd_registry(args: argparse.Namespace, store: Any, print_table: Any) -> int:
    command = args.registry_command
    if command == "list":
        print_table([{"model": m.name, "versions": m.n_versions, "production": m.production_version,
                      "latest": m.latest_version, "created_by": m.created_by} for m in list_models(store)])  # fmt: skip
    elif command == "versions":
        get_model(store, args.model)
        print_table([{"version": v.version, "stage": v.stage, "run": v.run_id, "sha256": v.artifact_sha256[:12],
                      "by": v.created_by, "created_at": v.created_at.strftime("%Y-%m-%d %H:%M")}
                     for v in list_versions(store, args.model)])  # fmt: skip
    elif command == "register":
        version = register_version(store, args.run, args.name, args.description, actor=cli_actor(store))
        print(f"registered {version.label} from run {version.run_id} (sha256 {version.artifact_sha256[:12]}…)")
    elif command == "stage":
        version = find_version(store, args.model, args.version)
        version = set_stage(store, version.id, args.stage, actor=cli_actor(store))
        print(f"{version.label} is now {version.stage}")
    elif command == "request":
        version = find_version(store, args.model, args.version)
        request = request_promotion(store, version.id, args.justification, actor=cli_actor(store))
        print(f"request {request.id}: {request.label} to production, gates evaluated:")
        _print_gates(request.gates)
        print(request.gate_summary)
        for worse in request.worse_metrics:
            print(f"  [worse] {worse.sentence()}")
    elif command == "requests":
        requests = list_requests(store, status=args.status)
        if args.format == "json":
            print(json.dumps([{**r.__dict__, "created_at": r.created_at.isoformat(),
                               "decided_at": r.decided_at.isoformat() if r.decided_at else None}
                              for r in requests], indent=2, default=str))  # fmt: skip
        else:
            print_table([{"id": r.id, "model": r.model, "version": r.version, "status": r.status,
                          "by": r.requested_by, "gates": r.gate_summary,
                          "decided_by": r.decided_by} for r in requests])  # fmt: skip
    elif command == "approve":
        request = approve_promotion(store, args.request, args.comment, actor=cli_actor(store),
                                               override_justification=args.override)  # fmt: skip
        print(f"request {request.id} approved: {request.label} is in production")
    elif command == "reject":
        request = reject_promotion(store, args.request, args.comment, actor=cli_actor(store))
        print(f"request {request.id} rejected")
    elif command == "withdraw":
        request = withdraw_promotion(store, args.request, actor=cli_actor(store))
        print(f"request {request.id} withdrawn")
    elif command == "policy":
        return _policy(args, store)
    else:
        return _card(args, store)
    return 0


def _print_gates(gates: list[dict[str, Any]]) -> None:
    for gate in gates:
        mark = {"passed": "pass", "not applicable": "n/a"}.get(gate_state(gate), "FAIL")
        print(f"  [{mark}] {gate['label']}: {gate['detail']}")


def _policy(args: argparse.Namespace, store: Any) -> int:
    if args.file and args.reset:
        raise ValidationError("Give either --file or --reset, not both.")
    if args.file or args.reset:
        policy = read_policy_file(args.file) if args.file else None
        set_policy(store, args.model, policy, actor=cli_actor(store))
        print(f"policy of {args.model} {'reset to the default' if args.reset else 'updated'}")
    print(json.dumps(effective_policy(store, args.model), indent=2))
    return 0


def _card(args: argparse.Namespace, store: Any) -> int:
    card = model_card(store, find_version(store, args.model, args.version).id)
    text = card_markdown(card) if args.format == "markdown" else card_html(card)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as err:  # a missing folder, a folder given as the file, no permission
            raise ValidationError(f"The model card cannot be written to {args.output!r}: {err.strerror}.") from None
        print(f"model card written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0
