"""What mailslot does, with no HTTP in sight: polls and the claim, parked polls and their wake-ups,
intervals, identity, people, sends, broadcasts, triggers, templates, personalization and filters.

Modules here never import aiohttp or `gateway.http` (an import contract checks it); they call
`storage` and raise `gateway.errors`.
"""
