"""rag's evaluation suite: question sets in, reports and gates out. Measures the product only
through its public interfaces (`rag.compose`, `Engine.answer()`, the retriever)."""
