"""Compiled execution's planner: an operation made into the store calls it
needs and a builder that writes the response from the documents.

``build`` plans (``nodes``: what a plan is), ``fields`` says how each schema field
is found, ``fetch`` asks the store, ``shape`` writes the response, ``run``
puts them together with ordinary execution's errors, ``explain`` prints a
plan, ``state`` holds one run's answers. ``api.execution.compiled`` serves it.
"""

from api.execution.plan.build import build_plan, directive_variables
from api.execution.plan.nodes import Fallback, Plan, Unplannable
from api.execution.plan.run import run

__all__ = ["Fallback", "Plan", "Unplannable", "build_plan", "directive_variables", "run"]
