"""template.yaml as SAM deploys it: the AWS::Serverless-2016-10-31 transform run offline by
aws-sam-translator (the library SAM CLI and CloudFormation's transform are built on), with
the parameter values of one samconfig.toml environment.

    python infra/stack/translate.py dev|prod   prints the translated template (JSON)

Run with .venv-sam's Python (infra/tools.sh installs SAM CLI, which brings the translator).
"""

import copy
import json
import os
import sys

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from resolve import ROOT, samconfig_parameters

TEMPLATE = os.path.join(ROOT, "template.yaml")
REGION = "us-east-1"
# The translator asks boto3 for the region (to write ARNs); there is no AWS account here.
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def load_template(path=TEMPLATE):
    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def translate(template, parameters):
    """The CloudFormation template SAM would deploy. Parameters without a value take their
    default, as CloudFormation does; the translator needs them to name SAM's resources."""
    values = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update(parameters)
    values.update({"AWS::Region": REGION, "AWS::Partition": "aws", "AWS::AccountId": "123456789012"})
    template = packaged(template)
    # SAM only names managed policies it is given by name; this template gives none.
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values=values)


def packaged(template):
    """As `sam deploy` hands it over: each function's code uploaded to S3 (`sam package`)."""
    template = copy.deepcopy(template)
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://sam-deploy-artifacts/{logical_id}.zip"
    return template


def translated(environment):
    return translate(load_template(), samconfig_parameters(environment))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    json.dump(translated(sys.argv[1]), sys.stdout, indent=2, default=str)
    print()
