.PHONY: test lint bench scorecard docs

test:
	python3 -m pytest -q

lint:
	ruff check logpost tests benchmarks tools
	mypy logpost

bench:
	python3 benchmarks/bench_ingest.py

scorecard:
	python3 tools/scorecard.py

docs:
	python3 tools/signature_docs.py
