"""Namespaced documents with signed revisions, and read grants: ``/storage/docs/…``, ``/storage/grants/…``.

Every route needs a session token (:mod:`backend.storage_auth`). Writes are the owner's; reads are
the owner's or a reader's holding a grant that covers the document (or the namespace, for the
list) and has not expired or been revoked. The server checks each revision before storing it: the
shape, that ``owner``/``namespace``/``key`` are the path's, that ``_rev`` hashes the content, that
the signature is by the owner's current profile signing key, and — atomically with the write — that
``_lastrev`` is the head (else 409 ``revision_conflict`` with the head in ``details``) and that the
revision is not stored already (409 ``revision_exists``: a replay). Formats: ``specs/storage.md``.
"""

from __future__ import annotations

from aiohttp import web

from backend.appkeys import documents_key, now_ms, settings_key
from backend.docstore import MAX_COSIGNATURES, StoredRevision
from backend.errors import (
    CosignatureLimit,
    DocumentRemoved,
    GrantExpired,
    GrantLimit,
    GrantRevoked,
    InvalidGrantId,
    InvalidRev,
    NothingToRemove,
    NotGranted,
    QuotaExceeded,
    RevisionConflict,
    RevisionExists,
    TooManyDocuments,
    WrongDocument,
    WrongOwner,
)
from backend.records import Resolved
from backend.schemas import HistoryPage
from backend.storage_auth import require_owner, require_viewer, resolve_path_name
from ensign.errors import InvalidName, NotFound, SignatureError
from ensign.protocol.grants import Grant, verify_grant
from ensign.protocol.revisions import (
    HASH_PATTERN,
    NAME_PATTERN,
    CoSignature,
    Revision,
    verify_cosignature,
    verify_revision,
)
from ensign.protocol.schema import load
from ensign.web import read_json

__all__ = [
    "routes",
    "delete_grant",
    "get_all",
    "get_document",
    "get_grants",
    "get_history",
    "get_revision",
    "get_usage",
    "post_cosignature",
    "post_grant",
    "put_document",
]

routes = web.RouteTableDef()

_HISTORY_PAGE = HistoryPage()

_DOCS = "/storage/docs/{ensName}/{namespace}"
_DOC = _DOCS + "/{key}"


def _name(request: web.Request, field: str) -> str:
    value = request.match_info[field]
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidName(f"{field} must be 1-128 of A-Z a-z 0-9 . _ -")
    return value


def _rev(request: web.Request) -> str:
    value = request.match_info["rev"]
    if not HASH_PATTERN.fullmatch(value):
        raise InvalidRev("rev must be 0x followed by 64 lowercase hex digits")
    return value


async def _reader(request: web.Request, namespace: str, key: str | None) -> Resolved:
    """The path's owner, if the session is the owner's or holds a live grant covering ``key``."""
    viewer = await require_viewer(request)
    owner = await resolve_path_name(request)
    owner_hex = owner.address.lower()
    if owner_hex == viewer.address:
        return owner
    now = now_ms(request)
    for grant in await request.app[documents_key].grants_to(owner_hex, viewer.address):
        if grant.expires > now and grant.covers(namespace, key):
            return owner
    raise NotGranted("this account holds no live grant to read this from its owner")


def _json(stored: StoredRevision) -> web.Response:
    return web.json_response(stored.to_json())


@routes.put(_DOC)
async def put_document(request: web.Request) -> web.Response:
    """Write (``data`` a string) or remove (``data`` null) a document: one signed revision."""
    namespace, key = _name(request, "namespace"), _name(request, "key")
    owner = await require_owner(request)
    settings = request.app[settings_key].storage
    revision = Revision.from_json(await read_json(request), max_data=settings.max_document)
    owner_hex = owner.address.lower()
    if (revision.owner, revision.namespace, revision.key) != (owner_hex, namespace, key):
        raise WrongDocument("the revision names another document than the path")
    verify_revision(revision, signers={owner.signed_profile().profile.public_signing_key})
    if revision.removed and revision.lastrev is None:
        raise NothingToRemove("a removal must follow a revision (_lastrev is null)")
    result = await request.app[documents_key].write(
        revision, now_ms=now_ms(request), quota=settings.quota_bytes, max_documents=settings.max_documents
    )
    head = result.detail or None
    if result.outcome == "conflict":
        raise RevisionConflict(
            f"_lastrev is not the head of {namespace}/{key}; read the head, rebase and sign again",
            details={"head": head},
        )
    if result.outcome == "exists":
        raise RevisionExists("this revision is stored already", details={"head": head})
    if result.outcome == "too_many":
        raise TooManyDocuments(f"namespace {namespace} holds {settings.max_documents} documents already")
    if result.outcome == "quota":
        raise QuotaExceeded(
            f"the account's storage quota of {settings.quota_bytes} bytes would be exceeded",
            details={"used": int(result.detail), "quota": settings.quota_bytes},
        )
    return web.json_response({"_rev": revision.rev, "removed": revision.removed})


@routes.get(_DOC)
async def get_document(request: web.Request) -> web.Response:
    """The document's head revision; 404 ``document_removed`` (with the head) after a removal."""
    namespace, key = _name(request, "namespace"), _name(request, "key")
    owner = await _reader(request, namespace, key)
    docs = request.app[documents_key]
    head = await docs.head(owner.address, namespace, key)
    stored = None if head is None else await docs.revision(owner.address, head)
    if stored is None:
        raise NotFound(f"no document {namespace}/{key}")
    if stored.revision.removed:
        raise DocumentRemoved(f"document {namespace}/{key} was removed", details={"head": head})
    return _json(stored)


@routes.get(_DOCS)
async def get_all(request: web.Request) -> web.Response:
    """Every live document of the namespace (head revisions), by key."""
    namespace = _name(request, "namespace")
    owner = await _reader(request, namespace, None)
    heads = await request.app[documents_key].heads(owner.address, namespace)
    return web.json_response({"documents": [s.to_json() for s in heads if not s.revision.removed]})


@routes.get(_DOC + "/history")
async def get_history(request: web.Request) -> web.Response:
    """The document's revisions, oldest first: ``{total, offset, revisions}``; ``limit`` ≤ 100."""
    namespace, key = _name(request, "namespace"), _name(request, "key")
    page = load(_HISTORY_PAGE, dict(request.query), "query")
    owner = await _reader(request, namespace, key)
    docs = request.app[documents_key]
    total, revs = await docs.history(owner.address, namespace, key, page["offset"], page["limit"])
    if total == 0:
        raise NotFound(f"no document {namespace}/{key}")
    stored = await docs.revisions(owner.address, revs)
    return web.json_response({"total": total, "offset": page["offset"], "revisions": [s.to_json() for s in stored]})


@routes.get(_DOC + "/revisions/{rev}")
async def get_revision(request: web.Request) -> web.Response:
    """Any stored revision of the document by its ``_rev``."""
    namespace, key, rev = _name(request, "namespace"), _name(request, "key"), _rev(request)
    owner = await _reader(request, namespace, key)
    stored = await request.app[documents_key].revision(owner.address, rev)
    if stored is None or (stored.revision.namespace, stored.revision.key) != (namespace, key):
        raise NotFound(f"no revision {rev} of {namespace}/{key}")
    return _json(stored)


@routes.post(_DOC + "/revisions/{rev}/cosignatures")
async def post_cosignature(request: web.Request) -> web.Response:
    """Attach a third party's co-signature of ``rev`` (the owner uploads it); ``_rev`` is unchanged."""
    namespace, key, rev = _name(request, "namespace"), _name(request, "key"), _rev(request)
    owner = await require_owner(request)
    cosignature = CoSignature.from_json(await read_json(request))
    if not verify_cosignature(rev, cosignature):
        raise SignatureError("the co-signature does not verify with its signer key over this revision")
    docs = request.app[documents_key]
    stored = await docs.revision(owner.address, rev)
    if stored is None or (stored.revision.namespace, stored.revision.key) != (namespace, key):
        raise NotFound(f"no revision {rev} of {namespace}/{key}")
    outcome = await docs.add_cosignature(owner.address, rev, cosignature)
    if outcome == "no_revision":
        raise NotFound(f"no revision {rev} of {namespace}/{key}")
    if outcome == "limit":
        raise CosignatureLimit(f"revision {rev} carries {MAX_COSIGNATURES} co-signatures already")
    return web.json_response({"status": outcome})


# --- grants --------------------------------------------------------------------------------------


@routes.post("/storage/grants/{ensName}")
async def post_grant(request: web.Request) -> web.Response:
    """Store a grant signed by the owner (the path's account, logged in)."""
    owner = await require_owner(request)
    grant = Grant.from_json(await read_json(request))
    if grant.owner != owner.address.lower():
        raise WrongOwner("the grant's owner is not the path's account")
    verify_grant(grant, signer=owner.signed_profile().profile.public_signing_key)
    if grant.expires <= now_ms(request):
        raise GrantExpired("the grant has expired already")
    outcome = await request.app[documents_key].add_grant(grant)
    if outcome == "revoked":
        raise GrantRevoked("this grant was revoked; sign a new one (with a new nonce)")
    if outcome == "limit":
        raise GrantLimit("the account holds its most grants; revoke one first")
    return web.json_response({"id": grant.id, "status": outcome})


@routes.get("/storage/grants/{ensName}/to/{readerName}")
async def get_grants(request: web.Request) -> web.Response:
    """The live grants of the owner to the reader; for the owner or that reader."""
    viewer = await require_viewer(request)
    owner = await resolve_path_name(request)
    reader = await resolve_path_name(request, "readerName")
    if viewer.address not in (owner.address.lower(), reader.address.lower()):
        raise NotGranted("only the owner and the reader may list these grants")
    now = now_ms(request)
    grants = await request.app[documents_key].grants_to(owner.address.lower(), reader.address.lower())
    return web.json_response({"grants": [g.to_json() for g in grants if g.expires > now]})


@routes.delete("/storage/grants/{ensName}/{grantId}")
async def delete_grant(request: web.Request) -> web.Response:
    """Revoke a grant: the reader loses access at once, and the signed grant cannot come back."""
    owner = await require_owner(request)
    grant_id = request.match_info["grantId"]
    if not HASH_PATTERN.fullmatch(grant_id):
        raise InvalidGrantId("grantId must be 0x followed by 64 lowercase hex digits")
    if not await request.app[documents_key].revoke_grant(owner.address.lower(), grant_id):
        raise NotFound(f"no grant {grant_id}")
    return web.json_response({"id": grant_id, "status": "revoked"})


@routes.get("/storage/usage/{ensName}")
async def get_usage(request: web.Request) -> web.Response:
    """Bytes the account keeps, and its quota."""
    owner = await require_owner(request)
    used = await request.app[documents_key].usage(owner.address)
    return web.json_response({"bytes": used, "quota": request.app[settings_key].storage.quota_bytes})
