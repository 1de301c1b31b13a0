"""A workflow transition in Plone reaches the WebSocket of every browser
allowed to see the object, and no other."""

from urllib.parse import urlencode

import asyncio
import json
import pytest
import websockets


pytestmark = pytest.mark.e2e

RECEIVE_TIMEOUT = 15


async def connect(token_info: dict, origin: str):
    url = f"{token_info['websocket_url']}?{urlencode({'token': token_info['token']})}"
    ws = await websockets.connect(url, origin=origin)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
    assert welcome["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "topics": ["workflow.*"]}))
    subscribed = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
    assert subscribed["type"] == "subscribed"
    return ws


async def next_alert(ws) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT))
        if frame["type"] == "alert":
            return frame


def create_document(admin, site_url: str, doc_id: str, title: str):
    response = admin.post(site_url, json={"@type": "Document", "id": doc_id, "title": title})
    assert response.status_code == 201, response.text


def transition(admin, site_url: str, doc_id: str, name: str):
    response = admin.post(f"{site_url}/{doc_id}/@workflow/{name}")
    assert response.status_code == 200, response.text


async def test_transition_reaches_allowed_browsers_only(stack, admin, make_user):
    origin = f"http://localhost:{stack.plone_port}"
    editor = make_user("editor", ["Editor"])
    student = make_user("student", ["Member"])
    editor_token = editor.alerts_token()
    assert editor_token["websocket_url"] == stack.websocket_url

    create_document(admin, stack.plone_url, "staff-minutes", "Staff meeting minutes")
    create_document(admin, stack.plone_url, "timetable", "Spring timetable")

    editor_ws = await connect(editor_token, origin)
    student_ws = await connect(student.alerts_token(), origin)
    try:
        # Submitted for review, the minutes stay hidden from members.
        transition(admin, stack.plone_url, "staff-minutes", "submit")
        transition(admin, stack.plone_url, "timetable", "publish")

        first = await next_alert(editor_ws)
        assert first["alert"]["topic"] == "workflow.submit"
        assert first["alert"]["url"] == f"{stack.plone_url}/staff-minutes"
        assert first["alert"]["source"]["review_state"] == "pending"
        assert first["alert"]["source"]["actor"] == "admin"
        second = await next_alert(editor_ws)
        assert second["alert"]["topic"] == "workflow.publish"
        assert second["alert"]["url"] == f"{stack.plone_url}/timetable"

        # Alerts arrive in stream order: had the student been sent the
        # minutes, that frame would come before the timetable's.
        seen_by_student = await next_alert(student_ws)
        assert seen_by_student["alert"]["url"] == f"{stack.plone_url}/timetable"
        assert seen_by_student["id"] == second["id"]
    finally:
        await editor_ws.close()
        await student_ws.close()
