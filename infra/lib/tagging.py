"""Required tags on every taggable resource, applied in one place.

A stack transformation (run by the SDK itself, so it also runs under the offline mocks) adds the tags
to every resource whose constructor accepts ``tags``, keeping any a component set explicitly.
"""

from __future__ import annotations

import inspect
from functools import cache

import pulumi

REQUIRED_TAG_KEYS = ("project", "stack", "environment", "managed-by")


@cache
def _accepts_tags(resource_type: type) -> bool:
    init = getattr(resource_type, "_internal_init", None)
    return init is not None and "tags" in inspect.signature(init).parameters


def required_tags(environment: str) -> dict[str, str]:
    return {
        "project": pulumi.get_project(),
        "stack": pulumi.get_stack(),
        "environment": environment,
        "managed-by": "pulumi",
    }


def register_required_tags(environment: str) -> None:
    tags = required_tags(environment)

    def add_tags(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not isinstance(args.resource, pulumi.CustomResource):
            return None
        # Typed as ``type``: pulumi's CustomResource declares ``__hash__`` in a way mypy does not see as Hashable.
        resource_type: type = type(args.resource)
        if not _accepts_tags(resource_type):
            return None
        props = dict(args.props)
        props["tags"] = pulumi.Output.from_input(props.get("tags") or {}).apply(lambda own: {**tags, **own})
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    pulumi.runtime.register_stack_transformation(add_tags)
