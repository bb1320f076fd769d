"""Fitting a repository larger than the budget: rank by what the code depends on, compress files
to outlines before leaving any out, and say why each file got its place.

- ``languages``: which tree-sitter grammar reads a file, and the queries run on it;
- ``parse``: one file's imports, definitions, references and outline (``Facts``), cached;
- ``graph``: imports resolved to files of the repository, plus definition/reference edges;
- ``history``: git churn and recency from one ``git log`` pass;
- ``rank``: groups, PageRank centrality and the score, with the reasons;
- ``skeleton``: the compressed text (kept lines at their numbers, one marker per elided range);
- ``plan``: full / compressed / left out within the budget, against exact counts;
- ``fill``: what whole files leave of the budget, filled line by line (``Compressed``);
- ``stage``: the packer's entry point (``FitStage``), with the caching;
- ``report``: what the summaries and ``--explain-ranking`` print.
"""
