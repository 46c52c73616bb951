"""Just enough of CloudFormation's intrinsic functions to read a translated template as one
stage would deploy it: Ref, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap,
Fn::If / Fn::Equals / Fn::Not / Fn::And / Fn::Or / Condition, Fn::GetAtt, and
AWS::NoValue (which drops the entry). A resource's Ref and attributes stay placeholders
("<LogicalId>", "<LogicalId.Attribute>") unless a subclass says what they are (the IAM
scan in infra/scan.py makes them plausible ARNs). No dependency beyond the standard
library: the scanners' venv has no SAM translator."""

import os
import shlex
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMCONFIG = os.path.join(ROOT, "samconfig.toml")
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "connectors",
}
NO_VALUE = object()


def samconfig_parameters(environment, path=SAMCONFIG):
    """The parameter values `sam deploy --config-env ENVIRONMENT` passes."""
    with open(path, "rb") as f:
        config = tomllib.load(f)
    overrides = config[environment]["deploy"]["parameters"].get("parameter_overrides", "")
    if isinstance(overrides, list):
        overrides = " ".join(overrides)
    return dict(token.split("=", 1) for token in shlex.split(overrides))


class Stack:
    """A translated template with its parameter values (defaults where none is given)."""

    def __init__(self, template, parameters):
        self.template = template
        values = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        values.update(parameters)
        for name, spec in template.get("Parameters", {}).items():
            if spec.get("Type") == "CommaDelimitedList" and isinstance(values.get(name), str):
                values[name] = values[name].split(",")
        self.parameters = values

    @property
    def resources(self):
        return self.template["Resources"]

    def of_type(self, kind):
        return {k: r for k, r in self.resources.items() if r["Type"] == kind}

    def condition(self, name):
        return bool(self.value(self.template["Conditions"][name]))

    def resource_ref(self, logical_id):
        """What `Ref` of a resource gives."""
        return f"<{logical_id}>"

    def resource_att(self, logical_id, attribute):
        """What `Fn::GetAtt` of a resource gives."""
        return f"<{logical_id}.{attribute}>"

    def value(self, node):
        """`node` with every intrinsic function evaluated; AWS::NoValue drops the entry."""
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.value(a) for a in arg)
                return self.template["Mappings"][m][k1][k2]
            if key == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return a == b
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.resource_att(logical_id, attribute)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.resource_ref(name)

    def sub(self, arg):
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out, i = "", 0
        while True:
            start = text.find("${", i)
            if start < 0:
                return out + text[i:]
            end = text.index("}", start)
            out += text[i:start]
            name = text[start + 2 : end]
            if name.startswith("!"):
                out += "${" + name[1:] + "}"
            elif name in variables:
                out += str(self.value(variables[name]))
            elif "." in name and name.split(".", 1)[0] in self.resources:
                out += str(self.resource_att(*name.split(".", 1)))
            else:
                out += str(self.ref(name))
            i = end + 1
