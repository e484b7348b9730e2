"""The integration page (docs/hybrid_retriever.mdx) runs as shown, block after block.

Its ```python blocks run in order in one namespace, with the real all-MiniLM-L6-v2 model (the
page uses the default embedding), in a temporary working directory. Each block's printed output
is checked where the page makes a promise (the exact term first, the chain's answer).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "hybrid_retriever.mdx"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SECTIONS = ("Overview", "Integration details", "Setup", "Instantiation", "Usage")


def test_the_page_has_langchains_retriever_sections() -> None:
    text = PAGE.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    for section in (*SECTIONS, "Use within a chain", "API reference"):
        assert section in headings, section


def test_every_block_of_the_page_runs(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_HYBRID_MODEL_DIR", str(model_dir))
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    namespace: dict[str, object] = {"__name__": "docs_page"}
    outputs = []
    for number, block in enumerate(blocks, start=1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102
        outputs.append(printed.getvalue())
    usage, async_usage, chain = outputs[1], outputs[2], outputs[3]
    assert usage.splitlines()[0].startswith("The NX-220 router shows error E-4471")
    assert "'bm25_rank': 1" in usage
    assert async_usage.strip() == "Espresso needs a fine grind and nine bar of pressure."
    assert chain.strip() == "Update the router firmware."
