"""The Trash page and the "Move to trash" block of the run page: hide, restore, purge, by role."""

from __future__ import annotations

import tracking
from tests.governance import make_accounts
from tests.pages import button, no_exception, open_page


def _run(actor) -> int:
    with tracking.start_run("pages", params={"a": 1}, store=tracking.open_store(), actor=actor) as run:
        run.log_metric("loss", 0.5)
    return run.id


def test_pages_trash_move_from_the_run_page_then_restore_from_the_trash():
    users = make_accounts(tracking.open_store())
    run_id = _run(users["data_scientist"])
    at = open_page("data_scientist", "pages/run.py", id=run_id)
    no_exception(button(at, "Move to trash").click().run())
    assert "This run is in the trash" in at.warning[0].value
    assert tracking.list_runs(tracking.open_store()) == []
    trash = open_page("data_scientist", "pages/trash.py")
    assert list(trash.dataframe[0].value["id"]) == [run_id]
    assert not button(trash, "Restore").disabled
    assert "only admins can" in " ".join(c.value for c in trash.caption)  # purging is for admins
    no_exception(button(trash, "Restore").click().run())
    assert [r.id for r in tracking.list_runs(tracking.open_store())] == [run_id]
    assert "The trash is empty" in trash.info[0].value


def test_pages_trash_admin_purges_and_a_viewer_may_not_move():
    users = make_accounts(tracking.open_store())
    run_id = _run(users["data_scientist"])
    viewer = open_page("viewer", "pages/run.py", id=run_id)
    assert button(viewer, "Move to trash").disabled
    tracking.trash_run(tracking.open_store(), run_id, actor=users["engineer"])
    admin = open_page("admin", "pages/trash.py")
    no_exception(button(admin, "Purge for good").click().run())
    assert tracking.find_run(tracking.open_store(), run_id) is None
    assert "The trash is empty" in admin.info[0].value
