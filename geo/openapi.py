"""The API's contract: ``/openapi.json`` (OpenAPI 3.1) built from the routes themselves, and ``/docs``.

Each view declares its contract next to its ``@allow``, with pydantic models for its query
parameters, its body and its answers::

    @bp.get("/outlets/<code>/slots")
    @allow(PUBLIC)
    @contract(query=SlotsQuery, responses={200: DaySlotsAnswer}, errors=(400, 404))
    def slots(code): ...

The document is built from ``app.url_map`` at the first request for it: the path parameters
come from the url rule, the security of each operation from ``geo.auth.access_of``, the
summary from the view's docstring, and every error answer is ``application/problem+json``
(the ``Problem`` schema). What every route of a kind can answer is added here, not by each view:
302 (an anonymous visitor of a page for some roles goes to the sign-in page), 401 (an unknown,
expired or revoked bearer token is refused on any route), 403 (a route for some roles; a
state-changing request made with a session cookie and no CSRF token), 400 (a NUL in a
parameter; a JSON body malformed), 413 and 415 (a body too large, of another media type), 503
(the database is out of reach). A route without a contract still appears, flagged
``x-contract-missing``, and ``tests/unit/test_openapi.py`` fails on it. pydantic writes JSON
Schema 2020-12, which OpenAPI 3.1 takes as it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping, TypeVar, get_type_hints

from flask import Blueprint, Flask, current_app, jsonify, render_template
from pydantic import BaseModel, ConfigDict, create_model
from pydantic.json_schema import models_json_schema

from geo.auth import PUBLIC, SAFE_METHODS, access_of, allow

__all__ = [
    "model_of",
    "Answer", "Contract", "Problem", "FeatureCollection", "contract", "contract_of", "openapi_document", "bp",
    "JSON", "PROBLEM_JSON", "GEOJSON", "HTML",
]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
GEOJSON = "application/geo+json"
HTML = "text/html"
REF = "#/components/schemas/{model}"
View = TypeVar("View", bound=Callable)

STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No content", 302: "Found", 303: "See other", 400: "Bad request: a parameter or body field is malformed",
    401: "Unauthorized: no credentials, or an unknown, expired or revoked bearer token",
    403: "Forbidden: the account's role may not do this, or the CSRF token of a session is missing",
    404: "Not found", 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type: send application/json",
    422: "Unprocessable: well-formed, but refused by the rules", 429: "Too many requests: try again after Retry-After",
    503: "Service unavailable: the database is out of reach; try again after Retry-After",
}


def model_of(result: type) -> type[BaseModel]:
    """The contract model of a domain result whose ``as_dict`` is its fields as they are (a
    datetime as ISO 8601): made from the dataclass, so the answer and its schema cannot drift."""
    hints = get_type_hints(result)
    return create_model(result.__name__, **{item.name: (hints[item.name], ...) for item in fields(result)})


class Problem(BaseModel):
    """An error, as RFC 9457 ``application/problem+json``; ``field`` names the parameter or body field at fault."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    field: str | None = None


class Feature(BaseModel):
    """An RFC 7946 Feature."""

    model_config = ConfigDict(extra="allow")
    type: str
    id: str | int | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None


class FeatureCollection(BaseModel):
    """An RFC 7946 FeatureCollection, with OGC API's numberMatched and numberReturned and ``truncated``."""

    model_config = ConfigDict(extra="allow")
    type: str
    features: list[Feature]
    numberMatched: int | None = None
    numberReturned: int | None = None
    truncated: bool | None = None


@dataclass(frozen=True)
class Answer:
    """One answer of a route: its media type and schema (a model, a JSON Schema, or None for a body
    without a schema, e.g. a calendar file), or no body at all (``media=None``), and its headers."""

    media: str | Mapping[str, Any] | None = JSON
    model: type[BaseModel] | dict | None = None
    description: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def media_models(self) -> dict[str, type[BaseModel] | dict | None]:
        """Media type -> model of this answer (empty without a body)."""
        if self.media is None:
            return {}
        return {self.media: self.model} if isinstance(self.media, str) else dict(self.media)

    def models(self) -> list:
        """The models of this answer."""
        return list(self.media_models().values())


@dataclass(frozen=True)
class Contract:
    """What a route takes and answers (see ``contract``)."""

    query: type[BaseModel] | None
    path: type[BaseModel] | None
    headers: type[BaseModel] | None
    body: Mapping[str, type[BaseModel] | dict]  # media type -> model or JSON Schema; empty: no body
    responses: Mapping[int, Answer]
    errors: frozenset[int]


def contract(*, responses: Mapping[int, Any], query: type[BaseModel] | None = None,
             path: type[BaseModel] | None = None, headers: type[BaseModel] | None = None,
             body: type[BaseModel] | Mapping[str, Any] | None = None, errors: Iterable[int] = ()) -> Callable[[View], View]:
    """Declare a view's contract: ``query`` (a model of its query parameters), ``path`` (a model
    describing its path parameters more closely than the url rule), ``headers`` (a model of the
    request headers it reads, named by their aliases), ``body`` (the model of its
    JSON body, or media type -> model or JSON Schema), ``responses`` (status -> model, ``Answer``
    or None for no body) and the problem statuses it can answer besides those every route of its
    kind can (``errors``)."""
    answers = {status: answer if isinstance(answer, Answer) else Answer(JSON if answer else None, answer)
               for status, answer in responses.items()}
    bodies = {} if body is None else dict(body) if isinstance(body, Mapping) else {JSON: body}
    declared = Contract(query, path, headers, bodies, answers, frozenset(errors))

    def declare_view(view: View) -> View:
        view.contract = declared
        return view

    return declare_view


def contract_of(app: Flask, endpoint: str) -> Contract | None:
    """The contract declared for ``endpoint``, or None."""
    return getattr(app.view_functions.get(endpoint), "contract", None)


# -- building the document ------------------------------------------------------------------------
_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?:max=(?P<max>[0-9]+))?[^)]*\))?:)?"
                            r"(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTERS = {
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "path": {"type": "string", "minLength": 1},
    "default": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
}


def _path_of(rule: str) -> tuple[str, list[tuple[str, dict]]]:
    """The OpenAPI path of a url rule and its parameters with the schema of their converter.

    >>> _path_of("/api/admin/tokens/<int(max=99):token_id>")
    ('/api/admin/tokens/{token_id}', [('token_id', {'type': 'integer', 'minimum': 0, 'maximum': 99})])
    """
    parameters = []
    for match in _RULE_ARGUMENT.finditer(rule):
        schema = dict(_CONVERTERS.get(match["converter"] or "default", _CONVERTERS["default"]))
        if match["max"]:
            schema["maximum"] = int(match["max"])
        parameters.append((match["name"], schema))
    return _RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule), parameters


class _Schemas:
    """The models of every contract, written once into ``components.schemas``."""

    def __init__(self, contracts: Iterable[Contract]):
        models = {(Problem, "serialization")}
        for declared in contracts:
            models |= {(model, "validation") for model in (declared.query, declared.path, declared.headers,
                                                           *declared.body.values()) if isinstance(model, type)}
            models |= {(model, "serialization") for answer in declared.responses.values()
                       for model in answer.models() if isinstance(model, type)}
        ordered = sorted(models, key=lambda item: (item[0].__module__, item[0].__qualname__, item[1]))
        self.refs, definitions = models_json_schema(ordered, ref_template=REF)
        self.components = definitions.get("$defs", {})

    def ref(self, model: type[BaseModel] | dict | None, mode: str = "serialization") -> dict | None:
        """A reference to ``model``'s schema (a dict is a schema already)."""
        if model is None or isinstance(model, dict):
            return model
        return self.refs[(model, mode)]

    def properties(self, model: type[BaseModel]) -> tuple[dict, set[str]]:
        """The properties of a parameter model and the required ones."""
        name = self.refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]
        schema = self.components[name]
        return schema.get("properties", {}), set(schema.get("required", ()))


def _parameter_schema(schema: dict) -> tuple[dict, str]:
    """A parameter's schema without the null a pydantic ``X | None`` allows (a parameter is absent
    instead), its title and its null default; and its description.

    >>> _parameter_schema({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "N"})
    ({'type': 'integer'}, '')
    """
    schema = {key: value for key, value in schema.items() if key != "title" and not (key == "default" and value is None)}
    description = schema.pop("description", "")
    choices = [choice for choice in schema.get("anyOf", ()) if choice != {"type": "null"}]
    if "anyOf" in schema and len(choices) == 1:
        schema = {**{key: value for key, value in schema.items() if key != "anyOf"}, **choices[0]}
    elif "anyOf" in schema:
        schema["anyOf"] = choices
    return schema, description


def _parameters(schemas: _Schemas, declared: Contract | None, arguments: list[tuple[str, dict]]) -> list[dict]:
    """The path parameters (from the url rule, refined by the contract's path model), then the query
    and header parameters of the contract's models."""
    described, _ = schemas.properties(declared.path) if declared and declared.path else ({}, set())
    parameters = []
    for name, schema in arguments:
        refined, description = _parameter_schema(described.get(name, {}))
        parameters.append({"name": name, "in": "path", "required": True, "description": description,
                           "schema": {**schema, **refined}})
    for place, model in (("query", declared.query), ("header", declared.headers)) if declared else ():
        properties, required = schemas.properties(model) if model else ({}, set())
        for name, schema in properties.items():
            schema, description = _parameter_schema(schema)
            parameters.append({"name": name, "in": place, "required": name in required,
                               "description": description, "schema": schema})
    return parameters


def _problem_statuses(declared: Contract | None, method: str, roles: frozenset[str], parameters: bool) -> set[int]:
    """Every problem a route can answer: its own, and those of every route of its kind (a route
    with parameters refuses a NUL in them: geo.requests.refuse_unstorable_url)."""
    statuses = {401, 503} | set(declared.errors if declared else ())
    if parameters or (declared and declared.body):
        statuses.add(400)
    if PUBLIC not in roles or method not in SAFE_METHODS:
        statuses.add(403)
    if declared and JSON in declared.body:
        statuses |= {400, 413, 415}
    elif declared and declared.body:
        statuses.add(413)
    return statuses


def _content(schemas: _Schemas, answer: Answer) -> dict | None:
    """The ``content`` of an answer."""
    media = answer.media_models()
    return {name: ({"schema": schemas.ref(model)} if model is not None else {}) for name, model in media.items()} or None


def _responses(schemas: _Schemas, declared: Contract | None, method: str, roles: frozenset[str],
               parameters: bool) -> dict:
    """The operation's answers: its own, then its problems."""
    answers = dict(declared.responses) if declared else {200: Answer(None, description="undeclared")}
    responses = {}
    for status, answer in sorted(answers.items()):
        described: dict[str, Any] = {"description": answer.description or STATUS_TEXT.get(status, str(status))}
        content = _content(schemas, answer)
        if content:
            described["content"] = content
        if answer.headers:
            described["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                    for name, text in answer.headers.items()}
        responses[str(status)] = described
    for status in sorted(_problem_statuses(declared, method, roles, parameters) - set(answers)):
        responses[str(status)] = {"description": STATUS_TEXT.get(status, str(status)),
                                  "content": {PROBLEM_JSON: {"schema": schemas.ref(Problem)}}}
        if status in (429, 503):
            responses[str(status)]["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                                 "schema": {"type": "string"}}}
    return responses


def _security(roles: frozenset[str]) -> tuple[list, str]:
    """The operation's security requirement and a sentence saying who may call it."""
    if PUBLIC in roles:
        return [], "Public: no account needed."
    return [{"bearerAuth": []}, {"cookieAuth": []}], f"Roles: {', '.join(sorted(roles))}."


SIGN_IN_FIRST = {"description": "Found: an anonymous visitor of a page goes to the sign-in page first",
                 "headers": {"Location": {"description": "/login?next=<this page>", "schema": {"type": "string"}}}}


NOT_FOR_THIS_ROLE = {"description": "Forbidden: a page for other roles, as a page saying who may see it",
                     "content": {HTML: {}}}


def _operation(app: Flask, schemas: _Schemas, path: str, endpoint: str, method: str, arguments: list) -> dict:
    """One operation of the document."""
    view = app.view_functions[endpoint]
    declared = contract_of(app, endpoint)
    roles = access_of(app, endpoint) or frozenset()
    # Docstrings write code as reST's ``x``; the document's text is Markdown.
    lines = (view.__doc__ or endpoint).replace("``", "`").strip().splitlines()
    security, who = _security(roles)
    parameters = _parameters(schemas, declared, arguments)
    operation = {
        "operationId": f"{endpoint}.{method.lower()}" if method != "GET" else endpoint,
        "tags": [endpoint.split(".")[0] if "." in endpoint else "service"],
        "summary": lines[0].strip(),
        "description": " ".join(line.strip() for line in lines[1:] if line.strip()) + ("\n\n" if len(lines) > 1 else "") + who,
        "security": security,
        "x-roles": sorted(roles),
        "parameters": parameters,
        "responses": _responses(schemas, declared, method, roles, bool(parameters)),
    }
    if PUBLIC not in roles and method == "GET" and not path.startswith("/api/"):
        operation["responses"].setdefault("302", SIGN_IN_FIRST)  # geo.auth's guard
        operation["responses"]["403"] = NOT_FOR_THIS_ROLE
    if declared is None:
        operation["x-contract-missing"] = True
    elif declared.body:
        operation["requestBody"] = {"required": True, "content": {
            media: {"schema": schemas.ref(model, "validation")} for media, model in declared.body.items()}}
    return operation


def openapi_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of every route of ``app`` but ``static``."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    schemas = _Schemas(filter(None, (contract_of(app, rule.endpoint) for rule in rules)))
    paths: dict[str, dict] = {}
    for rule in sorted(rules, key=lambda rule: rule.rule):
        path, arguments = _path_of(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app, schemas, path, rule.endpoint, method, arguments)
    return {
        "openapi": "3.1.0",
        "info": {"title": "GridAtlas", "version": app.config.get("API_VERSION", "0.1.0"),
                 "description": "The outage-and-outlet map service of a power distribution utility. "
                                "Errors are application/problem+json (RFC 9457)."},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "ga_<id>_<secret>",
                               "description": "An API token (flask users token, or POST /api/admin/accounts/{name}/tokens)."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": app.config.get("SESSION_COOKIE_NAME", "gridatlas_session"),
                               "description": "The session of POST /api/session or /login; state-changing "
                                              "requests also send its CSRF token as X-CSRF-Token."},
            },
        },
    }


# -- the routes -----------------------------------------------------------------------------------
bp = Blueprint("openapi", __name__)


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


@bp.get("/openapi.json")
@allow(PUBLIC)
@contract(responses={200: OpenApiDocument})
def openapi_json():
    """This API's OpenAPI 3.1 document."""
    if "openapi" not in current_app.extensions:
        current_app.extensions["openapi"] = openapi_document(current_app)
    return jsonify(current_app.extensions["openapi"])


@bp.get("/docs")
@allow(PUBLIC)
@contract(responses={200: Answer(HTML)})
def docs():
    """The API's documentation page (Swagger UI, served from our own static files)."""
    return render_template("api_docs.html")
