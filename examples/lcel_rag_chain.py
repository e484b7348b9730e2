"""A retrieval-augmented generation chain in LCEL: ``retriever | format_docs | prompt | llm``.

What it shows:
    * :class:`HybridRetriever` used as a Runnable inside an LCEL chain;
    * the same chain returning its sources next to the answer
      (``RunnableParallel`` + ``.assign``), the usual way to cite what the answer is based on.

It runs offline: the LLM is langchain-core's ``FakeListChatModel``, which replies with canned
text. To use a real model, replace ``make_llm()``'s body, e.g.::

    from langchain_openai import ChatOpenAI          # pip install langchain-openai
    return ChatOpenAI(model="gpt-4o-mini", temperature=0)  # reads OPENAI_API_KEY

(or ``ChatAnthropic``, ``ChatOllama``, ...); nothing else in the chain changes.

The corpus is 10 passages of ``examples/data/passages.jsonl`` in an in-memory Chroma
collection, embedded with the default offline model (:class:`MiniLMEmbeddings`).

Run (from the repository root)::

    python examples/lcel_rag_chain.py
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

from langchain_hybrid import HybridRetriever, MiniLMEmbeddings

DATA = Path(__file__).resolve().parent / "data"

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            (
                "Answer the question using only the context below. Cite passage ids in "
                "brackets. If the context does not contain the answer, say so.\n\n"
                "Context:\n{context}"
            ),
        ),
        ("human", "{question}"),
    ]
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def small_corpus(question: dict[str, Any], size: int = 10) -> list[Document]:
    """The question's relevant passages plus the first others, ``size`` in all."""
    rows = read_jsonl(DATA / "passages.jsonl")
    relevant = set(question["relevant"])
    chosen = [r for r in rows if r["_id"] in relevant]
    chosen += [r for r in rows if r["_id"] not in relevant][: size - len(chosen)]
    return [
        Document(
            id=r["_id"],
            page_content=f"{r['title']}\n\n{r['text']}",
            metadata={"title": r["title"], **r.get("metadata", {})},
        )
        for r in chosen
    ]


def format_docs(docs: Sequence[Document]) -> str:
    """Render retrieved documents as the prompt's context block, one per paragraph."""
    return "\n\n".join(f"[{d.id}] {' '.join(d.page_content.split())}" for d in docs)


def make_llm(answer: str) -> BaseChatModel:
    # Offline stand-in for a real chat model: it returns `answer` whatever the prompt says.
    # Swap in e.g. `ChatOpenAI(model="gpt-4o-mini", temperature=0)` for real answers.
    return FakeListChatModel(responses=[answer])


def main() -> None:
    question = read_jsonl(DATA / "queries.jsonl")[0]
    docs = small_corpus(question)
    retriever = HybridRetriever.from_documents(docs, MiniLMEmbeddings(), k=3)
    print(f"indexed {len(docs)} passages in memory")

    expected = ", ".join(f"[{i}]" for i in question["relevant"])
    llm = make_llm(f"(fake LLM) According to {expected}, here is the answer.")

    # 1. The plain chain: question in, answer text out.
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | llm
        | StrOutputParser()
    )
    print(f"\nquestion: {question['text']}")
    print(f"answer (chain):        {chain.invoke(question['text'])}")

    # 2. The same steps, keeping the retrieved documents so the caller can show sources.
    answer_step = (
        RunnableLambda(lambda x: {"context": format_docs(x["docs"]), "question": x["question"]})
        | PROMPT
        | llm
        | StrOutputParser()
    )
    with_sources = RunnableParallel(docs=retriever, question=RunnablePassthrough()).assign(
        answer=answer_step
    )
    result = with_sources.invoke(question["text"])
    print(f"answer (with sources): {result['answer']}")
    print("sources:")
    for doc in result["docs"]:
        meta = doc.metadata
        mark = "  (relevant)" if doc.id in question["relevant"] else ""
        print(
            f"  [{doc.id}] {meta['title']}  hybrid={meta['hybrid_score']:.4f} "
            f"bm25#{meta['bm25_rank']} vector#{meta['vector_rank']}{mark}"
        )
    print("\ncontext sent to the LLM:")
    print(format_docs(result["docs"]))


if __name__ == "__main__":
    main()
