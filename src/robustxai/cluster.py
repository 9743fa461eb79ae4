"""Checks of the cluster settings a run was started with (a Snakemake profile's resources), made before
any job is planned: a placeholder left in the SLURM profile would otherwise surface only as a refused
submission, after the dry run looked clean."""
from __future__ import annotations

from collections.abc import Mapping

#: how profiles/slurm marks a value the user must fill in
PLACEHOLDER = "CHANGE_ME"
#: the resources of a SLURM submission that name a site's partitions and accounts
SITE_RESOURCES = ("slurm_partition", "slurm_account")


def placeholder_resources(default_resources: Mapping[str, object],
                          rule_resources: Mapping[str, Mapping[str, object]]) -> list[str]:
    """Where a site resource (``SITE_RESOURCES``) still holds the profile's placeholder: "default-resources:
    slurm_partition" or "set-resources: <rule>: slurm_partition" entries, from the run's default resources
    (name -> raw value) and per-rule resources (rule -> name -> raw value). Raw values are the
    profile's strings (quoted or not); empty where every site resource is filled in."""
    found = [f"default-resources: {name}" for name, value in default_resources.items()
             if name in SITE_RESOURCES and PLACEHOLDER in str(value)]
    found += [f"set-resources: {rule}: {name}" for rule, resources in rule_resources.items()
              for name, value in resources.items() if name in SITE_RESOURCES and PLACEHOLDER in str(value)]
    return found


def placeholder_message(found: list[str]) -> str:
    """The error for ``placeholder_resources``' findings: what to change and where."""
    return (f"the SLURM profile still holds placeholder values ({PLACEHOLDER}...) at " + "; ".join(found)
            + ": set your cluster's partitions (the GPU one for every GPU rule) and account in "
            "your SLURM profile (profiles/slurm/config.yaml as shipped; clusters without accounts: delete the slurm_account lines and add "
            "`slurm-no-account: true`)")
