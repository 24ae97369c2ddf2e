"""Run by test_image: serve one request with scikit-learn, pandas and friends made unimportable.

Usage: python tests/app/no_training_libs.py MODEL_ZIP SPOOL_DIR RECORD_JSON -> prints "<status> <model_version>".
"""

from __future__ import annotations

import sys

for _name in ("sklearn", "pandas", "skops", "joblib", "scipy"):
    sys.modules[_name] = None  # type: ignore[assignment]  # any import of these now raises ImportError

import asyncio  # noqa: E402
import json  # noqa: E402

import httpx  # noqa: E402

from app.config import AppConfig  # noqa: E402
from app.factory import create_app  # noqa: E402


async def main(model: str, spool: str, record: str) -> str:
    app = create_app(AppConfig(model_dir=model, spool_dir=spool))
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.post("/predict", content=record, headers={"content-type": "application/json"})
    return f"{response.status_code} {json.loads(response.content)['model_version']}"


if __name__ == "__main__":
    print(asyncio.run(main(*sys.argv[1:4])))
