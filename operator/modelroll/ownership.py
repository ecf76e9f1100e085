"""Whose object a child's name belongs to: pure comparisons, no I/O.

Children are applied with force and found by label, and neither proves they are ours: a
tenant may name a ModelDeployment after an existing Service. An object is ours only when
its controlling ownerReference is this ModelDeployment (by UID), so the operator writes
and deletes nothing else.
"""

from __future__ import annotations

from modelroll.spec import JSON


def controlled_by(obj: JSON, uid: str) -> bool:
    references = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("controller") is True and r.get("uid") == uid for r in references)


def conflict_message(manifest: JSON) -> str:
    return (
        f"{manifest['kind']}/{manifest['metadata']['name']} already exists and is not owned "
        "by this ModelDeployment; it is left untouched (rename the ModelDeployment, or "
        "delete or rename that object)"
    )
