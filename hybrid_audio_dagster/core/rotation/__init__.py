"""Deterministic, resumable rotation of name × developer pairs (and scripts).

A campaign does not send every combination at once: each day it takes the next batch of
pairs of a *cycle*, an order in which every name × developer pair appears exactly once.
This module has two layers, neither importing Dagster:

* a pure layer (:class:`PairOrder`, :class:`StreamOrder`, :class:`FeistelPermutation`)
  that computes the i-th item of a cycle in O(1) time and memory;
* a persistent layer (:class:`RotationStore`) holding cursors in a JSON state file,
  advancing them under an exclusive lock, with an audit trail (JSON lines).

Items are stable string keys (slugs such as ``"john"``, ``"hilton"``). Key sets are sorted
and de-duplicated first (:class:`KeySet`), so the order never depends on input list order.

The package is split by what each module holds: :mod:`.errors` (the exception
hierarchy), :mod:`.order` (the pure layer and its guarantees G1–G8), :mod:`.batch` (the
results: :class:`Assignment`, :class:`Batch`, :class:`RotationStatus`), :mod:`.walk`
(walking a rotation forward from its state record), :mod:`.state` (the state file,
membership sidecars and the locked transaction), :mod:`.ledger` (the audit trail) and
:mod:`.store` (:class:`RotationStore` and its operations), :mod:`.counts` (pairs per
script from the audit trail: the per-variant counts of an A/B stream). Every public name
is re-exported here.

Operations (:class:`RotationStore`)
-----------------------------------
* ``advance(k, run_key_basis=...)`` → :class:`Batch`; ``next_pair()`` is ``advance(1)``
  (the "generate pair" operation materialises what it returns). Scripts are drawn from
  the scripts stream per pair, per batch, or not at all (``script_mode``).
* ``preview(n)`` → lazy iterator of the next ``n`` assignments; never writes anything and
  equals the next ``advance(n)`` if nothing else advanced meanwhile.
* ``next_name()``, ``next_developer()``, ``next_script()`` advance single-dimension
  streams with their own cursors, so a name-only or developer-only task (say, rendering
  the next name stem) does not consume pairs; ``stream(kind, n)`` and
  ``script_stream(n)`` preview them.
* ``reset(reason=...)`` and ``seek(target, reason=...)`` move cursors on purpose, with the
  reason in the audit trail; ``status()``, ``batch_for(run_key)``, ``last_batch()`` and
  ``audit_records()`` read.

A/B streams
-----------
The scripts are opaque keys; given the variants of one template (``followup-en``,
``followup-en--soft_warm``, …) the scripts stream is an A/B/… test that inherits the
stream guarantees: each stream cycle is a seeded permutation of the variants and a cycle
never starts with the variant the last one ended on (G6), so with ``script_mode="pair"``
two variants strictly alternate (A B A B …, across cycles and restarts), and with ``v``
variants every aligned block of ``v`` scripts holds each once, so the variants' counts
differ by at most 1 at every point while the membership is unchanged. Which pair gets
which variant depends only on the seed, the memberships and the cursors (G7), never on
timing. :func:`script_counts` reads the per-variant counts back from the audit trail.
"""
