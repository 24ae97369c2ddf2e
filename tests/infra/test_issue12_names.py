"""Issue #12 defect 8: dev and prod may share one AWS account, so no two stacks may ask for one physical name.

Pulumi auto-names (name + random suffix) every resource the program does not name; the names the program sets
itself are the inputs below. A new resource type with an explicit name must be added to ``NAME_INPUTS`` (the
completeness test fails until it is), so a new collision cannot slip past.
"""

from __future__ import annotations

from typing import Any

from tools.plan.offline import OfflineRun, run_offline

# type token -> the inputs that make up its account-scoped (per region) physical identity.
NAME_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:codecommit/repository:Repository": ("repositoryName",),
    "aws:codepipeline/pipeline:Pipeline": ("name",),
    "aws:codebuild/project:Project": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name",),
    "aws:cloudwatch/eventRule:EventRule": ("name",),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName",),
    "aws:batch/jobDefinition:JobDefinition": ("name",),
    "aws:batch/jobQueue:JobQueue": ("name",),
    "aws:scheduler/scheduleGroup:ScheduleGroup": ("name",),
    "aws:scheduler/schedule:Schedule": ("groupName", "name"),  # a schedule's name is unique in its group
    "aws:ecs/taskDefinition:TaskDefinition": ("family",),
    "aws:ssm/parameter:Parameter": ("name",),
    "aws:kms/alias:Alias": ("name",),
    "aws:athena/workgroup:Workgroup": ("name",),
    "aws:glue/catalogDatabase:CatalogDatabase": ("name",),
    "aws:glue/catalogTable:CatalogTable": ("databaseName", "name"),  # unique in its database
    # The internal stage ALB's private zone is named after stageHostname (the operator's DNS name, one per stack);
    # a record is unique by name and type in its zone.
    "aws:route53/zone:Zone": ("name",),
    "aws:route53/record:Record": ("zoneId", "name", "type"),
}
# Inputs that name a resource explicitly when set (otherwise Pulumi auto-names it).
EXPLICIT_NAME_KEYS = ("name", "namePrefix", "repositoryName", "dashboardName", "family", "bucket", "roleName",
                      "topicName", "queueName", "clusterName", "alarmName", "repository", "functionName")  # fmt: skip
# Child resources whose "bucket"/"repository" input refers to their parent instead of naming themselves.
REFERENCES = {"aws:s3/": "bucket", "aws:ecr/lifecyclePolicy": "repository", "aws:ecr/repositoryPolicy": "repository"}


def physical_names(run: OfflineRun) -> dict[tuple[Any, ...], str]:
    names: dict[tuple[Any, ...], str] = {}
    for resource in run.resources:
        keys = NAME_INPUTS.get(resource.type)
        if keys and all(k in resource.inputs for k in keys):
            names[(resource.type, *(resource.inputs[k] for k in keys))] = resource.name
    return names


def test_dev_and_prod_share_no_account_scoped_physical_name(dev: OfflineRun, prod: OfflineRun) -> None:
    shared = set(physical_names(dev)) & set(physical_names(prod))
    assert not shared, f"both stacks would create: {sorted(shared)}"


def test_every_explicitly_named_resource_is_checked(stack: OfflineRun) -> None:
    """Completeness: a resource type that sets a name the program chose must be in NAME_INPUTS."""
    unchecked = set()
    for resource in stack.resources:
        if not resource.custom or resource.type in NAME_INPUTS:
            continue
        reference = next((key for prefix, key in REFERENCES.items() if resource.type.startswith(prefix)), None)
        explicit = {k for k in EXPLICIT_NAME_KEYS if k in resource.inputs} - {reference}
        if explicit:
            unchecked.add((resource.type, *sorted(explicit)))
    assert not unchecked, f"explicit names not covered by NAME_INPUTS: {sorted(unchecked)}"


def test_an_explicit_repository_name_is_kept() -> None:
    run = run_offline("dev", overrides={"ml-delivery:repositoryName": "churn-model"})
    assert (
        run.one("aws:codecommit/repository:Repository", "delivery-code-repository").inputs["repositoryName"]
        == "churn-model"
    )
