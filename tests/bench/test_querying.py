"""How many timed runs a query scenario gets."""

from __future__ import annotations

from bench.querying import MIN_REPS, reps_within


def test_fast_queries_get_every_run_asked_for() -> None:
    assert reps_within(2.0, 30, budget_s=60) == 30


def test_slow_queries_get_as_many_as_fit_the_budget_but_never_too_few() -> None:
    assert reps_within(5_000, 30, budget_s=60) == 12
    assert reps_within(50_000, 30, budget_s=60) == MIN_REPS


def test_fewer_runs_asked_for_than_the_floor_are_respected() -> None:
    assert reps_within(50_000, 1, budget_s=60) == 1


def test_graphql_cores_schema_runs_the_timed_queries():
    """The execution scenario's limit: graphql-core's own execute on our SDL
    (which declares @defer/@stream, refused by its plain execute)."""
    import graphql

    from bench.queries import FRONT_PAGE
    from bench.querying import graphql_core_schema

    result = graphql.execute(graphql_core_schema({}, []), graphql.parse(FRONT_PAGE))
    assert not result.errors, result.errors
    assert result.data is not None and "articles" in result.data
