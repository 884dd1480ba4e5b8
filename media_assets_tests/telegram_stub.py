"""A local stand-in for the Telegram Bot API (no maintained fake exists), driven by the real python-telegram-bot.

It speaks the small part of the API this project uses: getMe, sendMessage, sendDocument (multipart), deleteMessage,
and getUpdates with long polling and offset confirmation. Tests inject a user's message, one-off errors (429 with
retry_after, 403, 500) and downtime (`stop()`), and read back what the bot sent."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_ID = 4242
TOKEN = "4242:stub-token-never-real"
JSON_PARAMS = {"chat_id", "offset", "limit", "timeout", "allowed_updates"}


@dataclass
class Sent:
    """One message the bot sent: text for sendMessage, document bytes and name for sendDocument."""

    method: str
    chat_id: int
    date: int
    message_id: int
    text: str = ""
    caption: str = ""
    document: bytes = b""
    filename: str = ""


@dataclass
class _Failure:
    method: str
    code: int
    description: str
    retry_after: int | None = None


@dataclass
class TelegramStub:
    token: str = TOKEN
    sent: list[Sent] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1000
        self._next_message_id = 1
        self._failures: list[_Failure] = []
        #: Text of every message users wrote, by message id, and the ids the bot deleted.
        self.user_messages: dict[int, str] = {}
        self.deleted: list[int] = []
        self._stopped = False
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> TelegramStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the stdlib's name
                stub._handle(self)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stopped = False
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Telegram goes down: pending long polls end and the port refuses connections."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- what tests drive --------------------------------------------------------------------------------------
    def inject_message(self, *, chat_id: int, user_id: int, text: str, date: int | None = None,
                       chat_type: str = "private") -> int:
        """A user writes to the bot; returns the update id."""
        with self._cond:
            update_id = self._next_update_id
            self._next_update_id += 1
            chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
            if chat_type != "private":
                chat["title"] = "a group"
            message_id = self._new_message_id()
            self.user_messages[message_id] = text
            self._updates.append({"update_id": update_id, "message": {
                "message_id": message_id, "date": int(time.time()) if date is None else date,
                "chat": chat, "from": {"id": user_id, "is_bot": False, "first_name": "someone"}, "text": text}})
            self._cond.notify_all()
            return update_id

    def fail_next(self, method: str, code: int, description: str = "injected", *, retry_after: int | None = None,
                  times: int = 1) -> None:
        """The next `times` calls of `method` answer with this error."""
        with self._cond:
            self._failures += [_Failure(method, code, description, retry_after)] * times

    def wait_for_sent(self, count: int = 1, timeout: float = 10) -> list[Sent]:
        """Block until the bot has sent at least `count` messages."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.sent) >= count, timeout):
                raise AssertionError(f"the bot sent {len(self.sent)} messages, expected {count}")
            return list(self.sent)

    def pending_update_ids(self) -> list[int]:
        """Updates not yet confirmed by a later getUpdates offset."""
        with self._cond:
            return [u["update_id"] for u in self._updates]

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # --- the API -----------------------------------------------------------------------------------------------
    def _new_message_id(self) -> int:
        self._next_message_id += 1
        return self._next_message_id

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith(prefix):
            self._reply(request, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        method = request.path[len(prefix):]
        params, files = self._parse(request)
        with self._cond:
            self.calls.append((method, params))
            failure = next((f for f in self._failures if f.method == method), None)
            if failure is not None:
                self._failures.remove(failure)
        if failure is not None:
            body: dict[str, Any] = {"ok": False, "error_code": failure.code, "description": failure.description}
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            self._reply(request, failure.code, body)
            return
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self._reply(request, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        self._reply(request, 200, {"ok": True, "result": handler(params, files)})

    @staticmethod
    def _parse(request: BaseHTTPRequestHandler) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        content_type = request.headers.get("Content-Type", "")
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                assert isinstance(name, str) and isinstance(payload, bytes), part
                if filename := part.get_filename():
                    files[name] = (filename, payload)
                else:
                    params[name] = payload.decode()
        else:
            params = dict(parse_qsl(raw.decode()))
        for key in JSON_PARAMS & params.keys():  # non-string values arrive JSON-encoded
            params[key] = json.loads(params[key])
        return params, files

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _api_getMe(self, params: dict, files: dict) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "media-pipeline", "username": "media_pipeline_bot"}

    def _message(self, chat_id: int, **fields: Any) -> dict[str, Any]:
        with self._cond:
            sent = Sent(date=int(time.time()), message_id=self._new_message_id(), chat_id=int(chat_id), **fields)
            self.sent.append(sent)
            self._cond.notify_all()
        return {"message_id": sent.message_id, "date": sent.date, "chat": {"id": sent.chat_id, "type": "private"},
                "from": self._api_getMe({}, {})}

    def _api_sendMessage(self, params: dict, files: dict) -> dict[str, Any]:
        return {**self._message(params["chat_id"], method="sendMessage", text=str(params["text"])),
                "text": str(params["text"])}

    def _api_sendDocument(self, params: dict, files: dict) -> dict[str, Any]:
        filename, content = next(iter(files.values()))
        result = self._message(params["chat_id"], method="sendDocument", caption=str(params.get("caption", "")),
                               document=content, filename=filename)
        return {**result, "document": {"file_id": "f1", "file_unique_id": "u1", "file_name": filename}}

    def _api_deleteMessage(self, params: dict, files: dict) -> bool:
        with self._cond:
            self.deleted.append(int(params["message_id"]))
        return True

    def _api_getUpdates(self, params: dict, files: dict) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            if offset < 0:  # only the last |offset| updates; earlier ones are forgotten
                self._updates = self._updates[offset:]
            elif offset > 0:  # confirms everything before the offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._stopped and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return self._updates[:limit]
