"""Just enough of CloudFormation's intrinsic functions to read a translated template as one
stage would deploy it: Ref (parameters and pseudo parameters; a resource stays
"<LogicalId>"), Fn::Sub, Fn::Join, Fn::FindInMap, Fn::If / Fn::Equals / Fn::Not /
Fn::And / Fn::Or / Condition, and Fn::GetAtt (kept as "<LogicalId.Attribute>")."""

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::NoValue": None,
}


class Stack:
    """A translated template with its parameter values (defaults where none is given)."""

    def __init__(self, template, parameters):
        self.template = template
        values = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        values.update(parameters)
        for name, spec in template.get("Parameters", {}).items():
            if spec.get("Type") == "CommaDelimitedList" and isinstance(values.get(name), str):
                values[name] = [v for v in values[name].split(",")] if values[name] else [""]
        self.parameters = values

    @property
    def resources(self):
        return self.template["Resources"]

    def of_type(self, kind):
        return {k: r for k, r in self.resources.items() if r["Type"] == kind}

    def condition(self, name):
        return bool(self.value(self.template["Conditions"][name]))

    def value(self, node):
        """`node` with every intrinsic function evaluated; AWS::NoValue drops the entry."""
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
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
                target = arg if isinstance(arg, str) else ".".join(arg)
                return f"<{target}>"
        out = {}
        for k, v in node.items():
            resolved = self.value(v)
            if resolved is not None:
                out[k] = resolved
        return out

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return f"<{name}>"

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
            elif "." in name:
                out += f"<{name}>"
            else:
                out += str(self.ref(name))
            i = end + 1
