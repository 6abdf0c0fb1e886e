"""A documents service whose routes permstore guards (the client kit's example)."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Header, Request
from permstore_client import AsyncPermstoreClient, Guard, require


def current_user(x_user: str = Header()) -> str:
    """The service's own authentication (here: trust a header)."""
    return f"user:{x_user}"


def document(request: Request) -> str:
    """The resource a request names."""
    return f"doc:{request.path_params['doc_id']}"


def create_app(connect: Callable[[], AsyncPermstoreClient], tenant: str) -> FastAPI:
    """The app, asking permstore through a client that connect() makes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with connect() as client:
            app.state.permstore = Guard(client, tenant)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/documents/{doc_id}")
    async def read(
        doc_id: str, user: str = Depends(require("read", resource=document, principal=current_user))
    ) -> dict[str, str]:
        """Read a document."""
        return {"doc": doc_id, "reader": user}

    return app
