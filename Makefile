.PHONY: test lint bench scorecard docs

test:
	python3 -m pytest -q

lint:
	ruff check logpost tests benchmarks
	mypy logpost

bench:
	python3 benchmarks/bench_ingest.py

scorecard:
	python3 -m logpost.signatures.scorecard

docs:
	python3 tools/signature_docs.py
