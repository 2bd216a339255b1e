"""Human numbers of requests: RQ-2026-00042 (requisitions), DA-2026-00007 (citizens' access),
numbered per (Paris) year in order of registration."""

from sqlalchemy import func
from sqlmodel import Session, select

from services.requisition.models import CitizenRequest, Requisition
from services.requisition.timefmt import paris_year


def next_number(s: Session, model: type[Requisition] | type[CitizenRequest], prefix: str, now_us: int) -> str:
    stem = f"{prefix}-{paris_year(now_us)}-"
    last = s.exec(select(func.max(model.number)).where(model.number.startswith(stem))).one()
    following = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{stem}{following:05d}"
