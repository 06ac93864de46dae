"""The FastAPI application: OpenAI-compatible routes on one ChatEngine.

Routes: GET /health (no key needed), GET /v1/models, GET /v1/models/{id},
POST /v1/chat/completions and POST /v1/completions (both with ``stream: true`` as server-sent
events ending in ``data: [DONE]``). Chats are rendered with the template the model was trained
with (``engine.render``), so answers equal those of ``lmforge chat`` and ``lmforge predict``.

Bodies are read and validated here rather than by FastAPI so that every problem gets one
OpenAI-style 4xx: over ``max_body`` bytes 413, not JSON or not an object 400, bad fields 400
(naming the field), unknown model 404, prompt + max_tokens over the model's context 400
(``context_length_exceeded``), missing or wrong key 401, full queue 429.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from lmforge.serve import errors, schemas
from lmforge.serve.errors import APIError
from lmforge.serve.messages import answer, chat_messages, stream_deltas
from lmforge.serve.limits import DEFAULT_MAX_REQUEST_BYTES, check_chars, prompt_char_limit
from lmforge.serve.scheduler import Busy, Job, Scheduler, StreamEnd


@dataclass
class Settings:
    name: str  # the model id clients pass
    gen: object  # default GenerationConfig (max_new_tokens: the default max_tokens)
    system: str | None = None  # system prompt for chats without one
    api_key: str | None = None
    aliases: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_REQUEST_BYTES  # 413 over this, checked while reading
    max_prompt_chars: int | None = None  # 400 over this, before tokenizing (None: derived)


def context_size(engine) -> int:
    config = getattr(engine.model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(engine.tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 4096


async def read_body(request: Request, cls, max_body: int):
    size = request.headers.get("content-length")
    if size and size.isdigit() and int(size) > max_body:
        raise APIError(413, f"the request body is {size} bytes, over the limit of {max_body}",
                       None, "request_too_large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise APIError(413, f"the request body is over the limit of {max_body} bytes", None,
                           "request_too_large")
    try:
        data = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", None,
                       "invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", None, "invalid_json")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise errors.from_validation(exc) from None


def generation(req, base, max_new_tokens: int):
    from lmforge.infer.engine import options

    over = dict(max_new_tokens=max_new_tokens, top_p=req.top_p, top_k=req.top_k,
                repetition_penalty=req.repetition_penalty, seed=req.seed,
                num_return_sequences=req.n)
    if req.temperature is not None:
        over["do_sample"] = req.temperature > 0
        over["temperature"] = req.temperature or None
    try:
        return options(base, **over)
    except ValueError as exc:
        if req.n > 1 and "do_sample" in str(exc):
            raise APIError(400, "n > 1 needs sampling: set temperature > 0", "n",
                           "invalid_value") from None
        raise APIError(400, f"invalid generation settings: {exc}", None,
                       "invalid_value") from None


def create_app(engine, settings: Settings, scheduler: Scheduler) -> FastAPI:
    app = FastAPI(title="lmforge", docs_url=None, redoc_url=None, openapi_url=None)
    errors.install(app)
    created = int(time.time())
    context = context_size(engine)
    names = {settings.name, *settings.aliases}
    max_chars = settings.max_prompt_chars or prompt_char_limit(context, engine.tokenizer)

    def auth(request: Request) -> None:
        if not settings.api_key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), settings.api_key.encode()):
            raise APIError(401, "missing or incorrect API key: send 'Authorization: Bearer "
                           "<key>'", None, "invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})

    def check_model(model: str) -> None:
        if model not in names:
            raise APIError(404, f"the model '{model}' does not exist; this server serves "
                           f"'{settings.name}'", "model", "model_not_found")

    def fit(prompts: list[str], req) -> tuple[int, list[int]]:
        """max_new_tokens for the request and each prompt's token count; 400 when too long."""
        param = "messages" if hasattr(req, "messages") else "prompt"
        check_chars(max(len(p) for p in prompts), max_chars, context, param)
        counts = [len(engine.encode(p)) for p in prompts]
        longest, asked = max(counts), req.limit()
        if longest + (asked or 1) > context:
            raise APIError(400, f"this model's maximum context length is {context} tokens; the "
                           f"prompt is {longest} tokens" + (f" and {asked} were asked for the "
                                                           "answer" if asked else ""),
                           param, "context_length_exceeded")
        return asked or min(settings.gen.max_new_tokens, context - longest), counts

    async def submit(prompts: list[str], req) -> Job:
        max_new, _ = await run_in_threadpool(fit, prompts, req)
        gen = generation(req, settings.gen, max_new)
        if req.stream and (len(prompts) > 1 or req.n > 1):
            raise APIError(400, "stream: true supports one prompt and n = 1", "stream",
                           "invalid_value")
        loop = asyncio.get_running_loop()
        job = Job(prompts, gen, req.stops(), loop, stream=req.stream)
        if req.stream:
            job.pieces = asyncio.Queue()
        else:
            job.future = loop.create_future()
        try:
            scheduler.submit(job)
        except Busy as exc:
            raise APIError(429, str(exc), None, "server_busy", headers={"Retry-After": "1"})
        return job

    async def results(job: Job):
        try:
            return await job.future
        finally:
            job.cancelled.set()  # a no-op when done; stops queued work of a client that left

    def chat_prompt(req: schemas.ChatRequest) -> tuple[str, list | None]:
        msgs, tools = chat_messages(req, settings.system)
        check_chars(sum(len(m["content"]) for m in msgs), max_chars, context, "messages")
        if tools:  # the engine's own refusal (infer.tool_calls), as a 400 on 'tools'
            from lmforge.errors import ModelError
            from lmforge.infer.tool_calls import refuse_without

            try:
                refuse_without(engine.call_format, f"'{settings.name}'")
            except ModelError as exc:
                raise APIError(400, f"{exc.message}: {exc.hint}", "tools",
                               "invalid_value") from None
        try:
            return engine.render(msgs, tools), tools
        except Exception as exc:  # a template that rejects this chat (e.g. roles out of order)
            raise APIError(400, f"the model's chat template cannot render these messages: "
                           f"{exc}", "messages", "invalid_value") from None

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": settings.name, **scheduler.stats()}

    @app.get("/v1/models", dependencies=[Depends(auth)])
    async def models():
        return {"object": "list", "data": [schemas.model_card(settings.name, created)]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(auth)])
    async def model(model_id: str):
        check_model(model_id)
        return schemas.model_card(settings.name, created)

    @app.post("/v1/chat/completions", dependencies=[Depends(auth)])
    async def chat(request: Request):
        req = await read_body(request, schemas.ChatRequest, settings.max_body)
        check_model(req.model)
        prompt, tools = await run_in_threadpool(chat_prompt, req)
        job = await submit([prompt], req)
        rid = schemas.new_id("chatcmpl")
        if req.stream:
            parse = (lambda text, reason: answer(engine, text, reason, tools)) if tools else None
            return _sse(_chat_events(job, rid, settings.name, req, parse))
        done = await results(job)
        choices = [answer(engine, c.text, c.finish_reason, tools) for c in done[0].choices]
        return schemas.chat_response(rid, settings.name, choices, done[0].prompt_tokens,
                                     sum(len(c.token_ids) for c in done[0].choices))

    @app.post("/v1/completions", dependencies=[Depends(auth)])
    async def completions(request: Request):
        req = await read_body(request, schemas.CompletionRequest, settings.max_body)
        check_model(req.model)
        prompts = req.prompts()
        job = await submit(prompts, req)
        rid = schemas.new_id("cmpl")
        if req.stream:
            return _sse(_text_events(job, rid, settings.name, req))
        done = await results(job)
        choices = [((p if req.echo else "") + c.text, c.finish_reason)
                   for p, comp in zip(prompts, done) for c in comp.choices]
        return schemas.text_response(rid, settings.name, choices,
                                     sum(c.prompt_tokens for c in done),
                                     sum(len(ch.token_ids) for c in done for ch in c.choices))

    app.state.scheduler, app.state.settings = scheduler, settings
    return app


def _sse(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _data(obj) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"


async def _pieces(job: Job):
    """Text pieces of a streaming job, then its StreamEnd; a generation error becomes an error
    event. The job is cancelled when the client goes away."""
    try:
        while True:
            item = await job.pieces.get()
            if isinstance(item, BaseException):
                yield APIError(500, f"generation failed: {type(item).__name__}", None,
                               "internal_error", "server_error")
                return
            yield item
            if isinstance(item, StreamEnd):
                return
    finally:
        job.cancelled.set()


async def _chat_events(job: Job, rid: str, name: str, req, parse=None):
    """Chunks of a streamed chat. With ``parse`` (a request with tools) the text is held back
    until the end: an answer with tool calls is sent as tool_calls deltas, any other as text."""
    created = int(time.time())
    held: list[str] = []
    yield _data(schemas.chat_chunk(rid, name, created, {"role": "assistant", "content": ""}))
    async for item in _pieces(job):
        if isinstance(item, APIError):
            yield _data(item.body())
            break
        if isinstance(item, StreamEnd):
            use = schemas.usage(item.usage.get("prompt_tokens", 0),
                                item.usage.get("completion_tokens", 0))
            reason = item.usage.get("finish_reason", "stop")
            if parse is not None:
                message, reason = parse("".join(held), reason)
                deltas = stream_deltas(message) if message.get("tool_calls") else \
                    [{"content": message["content"]}] if message["content"] else []
                for delta in deltas:
                    yield _data(schemas.chat_chunk(rid, name, created, delta))
            yield _data(schemas.chat_chunk(rid, name, created, {}, reason))
            if req.stream_options and req.stream_options.include_usage:
                yield _data(schemas.chat_chunk(rid, name, created, None, use=use))
            break
        if parse is not None:
            held.append(item)
            continue
        yield _data(schemas.chat_chunk(rid, name, created, {"content": item}))
    yield "data: [DONE]\n\n"


async def _text_events(job: Job, rid: str, name: str, req):
    created = int(time.time())
    if req.echo:
        yield _data(schemas.text_chunk(rid, name, created, req.prompts()[0]))
    async for item in _pieces(job):
        if isinstance(item, APIError):
            yield _data(item.body())
            break
        if isinstance(item, StreamEnd):
            use = schemas.usage(item.usage.get("prompt_tokens", 0),
                                item.usage.get("completion_tokens", 0))
            yield _data(schemas.text_chunk(rid, name, created, "",
                                           item.usage.get("finish_reason", "stop")))
            if req.stream_options and req.stream_options.include_usage:
                yield _data(schemas.text_chunk(rid, name, created, None, use=use))
            break
        yield _data(schemas.text_chunk(rid, name, created, item))
    yield "data: [DONE]\n\n"
