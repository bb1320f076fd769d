"""Publishing a review on GitHub: ``wholerepo pr-review`` and the Action that runs it.

Modules, in the order the flow uses them: ``actions`` (the Actions environment and event),
``github`` (a narrow REST + GraphQL client, paced and retried), ``hunks`` (the PR diff's hunks:
which lines GitHub accepts a comment on), ``state`` (hidden markers and fingerprints that follow
findings across pushes), ``inline`` (review comments and suggestions), ``summary`` (the one
living summary comment), ``run`` (the flow) and ``command`` (the click command).
"""
