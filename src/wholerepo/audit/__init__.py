"""``wholerepo audit``: a repository far larger than one window, reviewed in shards.

- ``shard``: the cut: the files into requests along the directory tree and the import graph
  (a package with its tests, tightly coupled files together, each request filled);
- ``repomap``: the repository map every request starts with (the tree and the outlines of the
  most important files), byte-identical across requests so an endpoint's prefix cache serves it;
- ``plan``: the whole plan from one pack of the repository: shards, map, exact requests, cached;
- ``checkpoint``: each finished shard's reply in the cache, keyed by its exact request and the
  endpoint, so ``--resume`` sends only what is missing;
- ``run``: the shards sent concurrently, spread over one or many endpoints;
- ``merge``: shard results (in-process or ``shard-K.json`` files from CI runners) into one
  ReviewResult, duplicates merged across shards.
"""
