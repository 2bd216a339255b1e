"""Statistics: requisitions per month and year by requesting service, lead times per step,
delivered vs expired, whether the footage helped the investigation, citizens' requests and their
outcomes. Months and years are Paris ones. Computed from the request tables (a CSU handles
hundreds of requests a year, not millions)."""

import statistics
from collections import Counter

from sqlmodel import select

from services.common.clock import from_us, to_us
from services.common.db import session
from services.common.pb.csu.v1 import requisition_pb2
from services.common.timefmt import HOUR_US, PARIS
from services.requisition import workflow
from services.requisition.context import Context
from services.requisition.models import CitizenRequest, Requisition, Transition

STEPS = (
    (workflow.REQUESTED, workflow.EXTRACTED),
    (workflow.EXTRACTED, workflow.RECEIVED),
    (workflow.RECEIVED, workflow.APPROVED),
    (workflow.APPROVED, workflow.DELIVERED),
    (workflow.REQUESTED, workflow.DELIVERED),
)


def compute(ctx: Context, request: requisition_pb2.StatisticsRequest) -> requisition_pb2.Statistics:
    now = to_us(ctx.clock.now())
    with session(ctx.engine) as s:
        query = select(Requisition)
        if request.start_us:
            query = query.where(Requisition.created_us >= request.start_us)
        if request.end_us:
            query = query.where(Requisition.created_us < request.end_us)
        rows = list(s.exec(query))
        ids = {r.id for r in rows}
        reached: dict[str, dict[str, int]] = {}
        for t in s.exec(select(Transition).where(Transition.subject_kind == "requisition")):
            if t.subject_id in ids:
                reached.setdefault(t.subject_id, {}).setdefault(t.to_state, t.at_us)
        citizens_query = select(CitizenRequest)
        if request.start_us:
            citizens_query = citizens_query.where(CitizenRequest.created_us >= request.start_us)
        if request.end_us:
            citizens_query = citizens_query.where(CitizenRequest.created_us < request.end_us)
        citizens = list(s.exec(citizens_query))
    out = requisition_pb2.Statistics()
    months: Counter[tuple[str, str]] = Counter()
    years: Counter[tuple[str, str]] = Counter()
    for row in rows:
        local = from_us(row.created_us).astimezone(PARIS)
        months[(f"{local:%Y-%m}", row.requesting_service)] += 1
        years[(f"{local:%Y}", row.requesting_service)] += 1
    out.per_month.extend(
        requisition_pb2.CountByService(period=p, requesting_service=svc, count=n)
        for (p, svc), n in sorted(months.items())
    )
    out.per_year.extend(
        requisition_pb2.CountByService(period=p, requesting_service=svc, count=n)
        for (p, svc), n in sorted(years.items())
    )
    for first, then in STEPS:
        hours = [
            (times[then] - times[first]) / HOUR_US
            for times in reached.values()
            if first in times and then in times and times[then] >= times[first]
        ]
        out.lead_times.add(
            step=f"{first}->{then}",
            count=len(hours),
            mean_hours=statistics.fmean(hours) if hours else 0.0,
            median_hours=statistics.median(hours) if hours else 0.0,
            max_hours=max(hours) if hours else 0.0,
        )
    states = Counter(r.state for r in rows)
    out.requisition_states.extend(requisition_pb2.StateCount(state=k, count=v) for k, v in sorted(states.items()))
    delivered = [r for r in rows if r.delivered_us is not None]
    out.delivered = len(delivered)
    out.expired = states.get(workflow.EXPIRED, 0)
    out.feedback_useful = sum(1 for r in delivered if r.feedback_useful is True)
    out.feedback_not_useful = sum(1 for r in delivered if r.feedback_useful is False)
    out.feedback_missing = sum(1 for r in delivered if r.feedback_useful is None)
    outcomes = Counter(c.outcome or "open" for c in citizens)
    out.citizen_outcomes.extend(requisition_pb2.StateCount(state=k, count=v) for k, v in sorted(outcomes.items()))
    out.citizen_requests = len(citizens)
    out.citizen_overdue = sum(1 for c in citizens if not c.closed_us and c.deadline_us <= now)
    return out
