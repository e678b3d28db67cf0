"""Every Kubernetes API request the operator's code makes, read from its syntax tree (for the RBAC tests).

A request is a call `x.request(METHOD, path, ...)` or `x.watch(path, ...)` (shimshift.kube.api.Kube's
two entry points) anywhere in the package. Its method and path are evaluated: module constants and
path-building functions (`node_path(name)`) for real, runtime values (parameters, attributes, what
calls on them return) as a placeholder standing for one path segment, shown as `{var}`. A local
variable counts with every value assigned to it (each branch), a loop variable with every item of the
module-level table it iterates (`for name, (path, kind) in RESOURCES.items()`).

When the method or the resource of a request depends on its function's parameters (`wait_until(kube,
path, ...)`), the function is a helper: each of its call sites in the package binds them, positionally,
by keyword or by default, up to `MAX_CALLERS` callers up, and each site counts as a request.

Nothing is skipped: whatever cannot be resolved is returned as `unresolved`, one line each naming the
place and why, and the RBAC tests fail on any: a request whose method or resource is not known, a helper
nobody calls, a call passing `*args`/`**kwargs` to a helper, a path that is not an API resource path, a
transport method of Kube called from outside it, or a client class of the kubernetes package used
directly (its requests would bypass Kube and this scan).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PACKAGE_DIR = REPO / "operator" / "shimshift"

VAR = "{var}"
# What a placeholder reads as while paths are built: a DNS label, so it passes unchanged through URL
# quoting and name checks in the path-building functions, and is shown as VAR afterwards.
_TOKEN = "x-shimshift-var-x"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_CALLERS = 4
MAX_COMBINATIONS = 512
# Kube's own plumbing under `request` and `watch`; a call to one of these elsewhere bypasses the scan.
TRANSPORT = frozenset({"_send", "_request_once", "call_api", "param_serialize"})
TRANSPORT_CLASS = "Kube"
# What the package may take from the kubernetes client: the transport and its configuration.
CLIENT_ATTRIBUTES = frozenset({"ApiClient", "Configuration"})

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# The one place whose requests name a resource no code fixes: the health gates' reads of the objects
# a NodeMigration's spec.rollout.gates.conditions names (any kind) and API discovery of their
# group-version (non-resource URLs every authenticated user may read, system:discovery). Their
# grants are the user's, through the chart's rbac.gateRules (tests/unit/chart/test_rbac.py checks
# those render as given, get only, and nothing by default); the scan lists them in `user_named`.
USER_NAMED = frozenset({("objects.py", "resource"), ("objects.py", "read_object")})


class Placeholder(str):
    """Stands for any runtime value in a path expression: `pod.namespace`, `name`, `self.x`..."""

    def __new__(cls) -> Placeholder:
        return super().__new__(cls, _TOKEN)

    def __getattr__(self, name: str) -> Placeholder:
        return Placeholder()

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder()

    def __getitem__(self, key: Any) -> Placeholder:
        return Placeholder()

    def __iter__(self) -> Iterator[str]:  # a runtime collection: of runtime values
        return iter([Placeholder()])


class Unresolved(Exception):
    """Why an expression could not be evaluated."""


@dataclass(frozen=True)
class Use:
    where: str  # file:line of the request, then " <- file:line" of each call site that bound it
    method: str  # GET, POST, PATCH, PUT, DELETE or WATCH
    path: str  # evaluated, with {var} for the variable parts


@dataclass(frozen=True)
class Source:
    path: Path
    module: str  # its import name


@dataclass(eq=False)
class Func:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    source: Source
    cls: str | None  # the class it is a method of
    parent: Func | None  # the function it is nested in
    assigned: dict[str, list[tuple[str, ast.AST, tuple[int, ...]]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def positional(self) -> list[ast.arg]:
        return [*self.node.args.posonlyargs, *self.node.args.args]

    @property
    def params(self) -> set[str]:
        a = self.node.args
        names = {p.arg for p in [*self.positional, *a.kwonlyargs]}
        return names | {p.arg for p in (a.vararg, a.kwarg) if p is not None}


@dataclass(frozen=True)
class Frame:
    """A function being evaluated; `bindings` (param -> argument and the caller's frame) once a call
    site is known, None at the top (its parameters are runtime values)."""

    func: Func | None  # None: module scope (a default value)
    source: Source
    bindings: dict[str, tuple[ast.expr, Frame]] | None = None


def package_sources(root: Path = PACKAGE_DIR, package: str = "shimshift") -> list[Source]:
    return [
        Source(p, ".".join([package, *p.relative_to(root).with_suffix("").parts]).removesuffix(".__init__"))
        for p in sorted(root.rglob("*.py"))
    ]


def parse_path(path: str) -> tuple[str, str, bool] | None:
    """(apiGroup, resource incl. subresource, names an object) of an API path; None if it is not one."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest or len(rest) > 3:
        return None
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    return group, resource, len(rest) >= 2


def determined(method: Any, path: Any) -> bool:
    """The method and the (group, resource) of a request are known: only names may be placeholders."""
    if not isinstance(method, str) or method not in METHODS | {"WATCH"} or not isinstance(path, str):
        return False
    parsed = parse_path(path.replace(_TOKEN, VAR))
    return parsed is not None and VAR not in parsed[0] + parsed[1]


class Scan:
    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = list(sources)
        self.trees = {s: ast.parse(s.path.read_text(), str(s.path)) for s in self.sources}
        self.funcs: list[Func] = []
        self.calls: dict[Func, list[ast.Call]] = {}
        self.module_calls: dict[Source, list[ast.Call]] = {}
        self._modules: dict[str, ModuleType] = {}
        for source, tree in self.trees.items():
            self._collect(source, tree.body, None, None)
        self.uses: list[Use] = []
        self.unresolved: list[str] = []
        self.user_named: list[str] = []  # requests of USER_NAMED functions, by place

    # ---- collecting -------------------------------------------------------------------------------
    def _collect(self, source: Source, body: list[ast.stmt], cls: str | None, parent: Func | None) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                func = Func(stmt, source, cls, parent)
                self.funcs.append(func)
                self.calls[func] = []
                self._walk_function(func, stmt.body)
                for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
                    if default is not None:
                        self._calls_in(default, self.module_calls.setdefault(source, []))
            elif isinstance(stmt, ast.ClassDef):
                self._collect(source, stmt.body, stmt.name, parent)
            elif parent is None:
                self._calls_in(stmt, self.module_calls.setdefault(source, []))

    def _calls_in(self, node: ast.AST, out: list[ast.Call]) -> None:
        out.extend(n for n in ast.walk(node) if isinstance(n, ast.Call))

    def _walk_function(self, func: Func, body: list[ast.stmt]) -> None:
        """Calls and local assignments of `func`'s own body; nested functions and classes are their own."""
        todo: list[ast.AST] = list(body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                func.assigned.setdefault(node.name, []).append(("opaque", node, ()))
                self._collect(func.source, [node], func.cls if isinstance(node, ast.ClassDef) else None, func)
                continue
            if isinstance(node, ast.Call):
                self.calls[func].append(node)
            self._record_assignment(func, node)
            todo.extend(ast.iter_child_nodes(node))

    def _record_assignment(self, func: Func, node: ast.AST) -> None:
        def targets(target: ast.AST, kind: str, value: ast.AST, at: tuple[int, ...]) -> None:
            if isinstance(target, ast.Name):
                func.assigned.setdefault(target.id, []).append((kind, value, at))
            elif isinstance(target, ast.Tuple | ast.List):
                for i, element in enumerate(target.elts):
                    if isinstance(element, ast.Starred):
                        targets(element.value, "opaque", value, ())
                    else:
                        targets(element, kind, value, (*at, i))

        if isinstance(node, ast.Assign):
            for target in node.targets:
                targets(target, "value", node.value, ())
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets(node.target, "value", node.value, ())
        elif isinstance(node, ast.For | ast.AsyncFor):
            targets(node.target, "item", node.iter, ())
        elif isinstance(node, ast.NamedExpr):
            targets(node.target, "value", node.value, ())
        elif isinstance(node, ast.AugAssign):
            targets(node.target, "opaque", node, ())
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars, "opaque", item.context_expr, ())
        elif isinstance(node, ast.ExceptHandler) and node.name:
            func.assigned.setdefault(node.name, []).append(("opaque", node, ()))
        elif isinstance(node, ast.comprehension):
            targets(node.target, "item", node.iter, ())
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                name = (alias.asname or alias.name).split(".")[0]
                func.assigned.setdefault(name, []).append(("import", node, ()))

    # ---- evaluating -------------------------------------------------------------------------------
    def module(self, source: Source) -> ModuleType:
        if source.module not in self._modules:
            self._modules[source.module] = importlib.import_module(source.module)
        return self._modules[source.module]

    def values(
        self, expr: ast.expr, frame: Frame, seen: frozenset[tuple[int, str]] = frozenset()
    ) -> list[Any]:
        """Every value `expr` can have in `frame` (placeholders for runtime values)."""
        names = sorted(
            {n.id for n in ast.walk(expr) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        )
        choices: dict[str, list[Any]] = {}
        for name in names:
            found = self.candidates(name, frame, seen)
            if found is not None:
                choices[name] = found
        combinations = 1
        for options in choices.values():
            combinations *= max(1, len(options))
        if combinations > MAX_COMBINATIONS:
            raise Unresolved(f"{ast.unparse(expr)} has more than {MAX_COMBINATIONS} possible values")
        module = vars(self.module(frame.source))
        code = compile(ast.fix_missing_locations(ast.Expression(expr)), "<path>", "eval")
        out: list[Any] = []
        for combo in itertools.product(*choices.values()):
            scope = dict(zip(choices, combo, strict=True))
            try:
                out.append(eval(code, dict(module), scope))  # noqa: S307 - the package's own constants
            except Exception as e:
                if any(isinstance(v, Placeholder) for v in combo):
                    out.append(Placeholder())  # computed from runtime values: a runtime value
                    continue
                raise Unresolved(f"cannot evaluate {ast.unparse(expr)}: {type(e).__name__}: {e}") from e
        return out

    def candidates(self, name: str, frame: Frame, seen: frozenset[tuple[int, str]]) -> list[Any] | None:
        """The values `name` can have in `frame`; None: leave it to the module's globals and builtins."""
        func = frame.func
        if func is None:
            module = self.module(frame.source)
            return None if hasattr(module, name) or hasattr(builtins, name) else [Placeholder()]
        key = (id(frame), name)
        if key in seen:  # `x = f(x)`: a value made from itself is only known at run time
            return [Placeholder()]
        seen = seen | {key}
        if name in func.params:
            if frame.bindings is not None and name in frame.bindings:
                expr, caller = frame.bindings[name]
                return self.values(expr, caller, seen)
            return [Placeholder()]
        if name in func.assigned:
            out: list[Any] = []
            for kind, value, at in func.assigned[name]:
                if kind in ("opaque", "import") or not isinstance(value, ast.expr):
                    out.append(Placeholder())
                    continue
                for v in self.values(value, frame, seen):
                    if kind == "item":
                        out.extend(self._items(v, at))
                    else:
                        out.append(self._element(v, at))
            return out
        if func.parent is not None:
            return self.candidates(name, Frame(func.parent, frame.source), seen)
        return self.candidates(name, Frame(None, frame.source), seen)

    def _items(self, iterable: Any, at: tuple[int, ...]) -> list[Any]:
        if isinstance(iterable, Placeholder):
            return [Placeholder()]
        try:
            return [self._element(item, at) for item in iterable]
        except TypeError:
            return [Placeholder()]

    def _element(self, value: Any, at: tuple[int, ...]) -> Any:
        for i in at:
            if isinstance(value, Placeholder):
                return value
            try:
                value = value[i]
            except (TypeError, IndexError, KeyError):
                return Placeholder()
        return value

    # ---- requests and their helpers ---------------------------------------------------------------
    def request_of(self, call: ast.Call) -> tuple[ast.expr | None, ast.expr | None, str] | None:
        """(method expression, path expression, what) of a request call; None for other calls."""
        func = call.func
        if not isinstance(func, ast.Attribute) or func.attr not in ("request", "watch"):
            return None
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        args: list[ast.expr | None] = [a for a in call.args if not isinstance(a, ast.Starred)]
        starred = len(args) != len(call.args) or any(k.arg is None for k in call.keywords)
        if func.attr == "request":
            method = args[0] if args else keywords.get("method")
            path = args[1] if len(args) > 1 else keywords.get("path")
        else:
            method, path = ast.Constant("WATCH"), args[0] if args else keywords.get("path")
        if starred:
            return None, None, f"{func.attr}(...) with *args or **kwargs"
        return method, path, func.attr

    def call_sites(self, func: Func) -> Iterator[tuple[Func | None, Source, ast.Call]]:
        """Calls of `func` by name: `name(...)` (in its parent, if nested) or `x.name(...)`."""
        scopes: list[tuple[Func | None, Source, list[ast.Call]]] = [
            (f, f.source, calls) for f, calls in self.calls.items() if f is not func
        ]
        scopes += [(None, s, calls) for s, calls in self.module_calls.items()]
        for caller, source, calls in scopes:
            if func.parent is not None and caller is not func.parent:
                continue
            for call in calls:
                f = call.func
                by_name = isinstance(f, ast.Name) and f.id == func.name and func.cls is None
                by_attribute = isinstance(f, ast.Attribute) and f.attr == func.name and func.parent is None
                if by_name or by_attribute:
                    yield caller, source, call

    def bind(self, call: ast.Call, callee: Func, caller: Frame) -> dict[str, tuple[ast.expr, Frame]]:
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            raise Unresolved(f"{callee.name}(...) called with *args or **kwargs")
        positional = callee.positional
        if callee.cls is not None and isinstance(call.func, ast.Attribute):
            positional = positional[1:]  # self
        bindings: dict[str, tuple[ast.expr, Frame]] = {}
        module_frame = Frame(None, callee.source)
        defaults = callee.node.args.defaults
        for param, default in zip(positional[len(positional) - len(defaults) :], defaults, strict=True):
            bindings[param.arg] = (default, module_frame)
        for param, kw_default in zip(callee.node.args.kwonlyargs, callee.node.args.kw_defaults, strict=True):
            if kw_default is not None:
                bindings[param.arg] = (kw_default, module_frame)
        for param, arg in zip(positional, call.args, strict=False):
            bindings[param.arg] = (arg, caller)
        for keyword in call.keywords:
            assert keyword.arg is not None
            bindings[keyword.arg] = (keyword.value, caller)
        return bindings

    def resolve(self, func: Func, call: ast.Call, method: ast.expr, path: ast.expr, where: str) -> None:
        # chain: (function, the call site that called the one below it), innermost first
        pending: list[list[tuple[Func, tuple[Func | None, Source, ast.Call] | None]]] = [[(func, None)]]
        while pending:
            chain = pending.pop()
            trail = where + "".join(
                f" <- {site[1].path.name}:{site[2].lineno}" for _, site in chain if site is not None
            )
            try:
                frames = self._frames(chain)
                methods = self.values(method, frames[0])
                paths = self.values(path, frames[0])
            except Unresolved as e:
                self.unresolved.append(f"{trail}: {e}")
                continue
            found = [(m, p) for m in methods for p in paths]
            if all(determined(m, p) for m, p in found):
                self.uses.extend(dict.fromkeys(Use(trail, m, p.replace(_TOKEN, VAR)) for m, p in found))
                continue
            shown = sorted({f"{m} {p}".replace(_TOKEN, VAR) for m, p in found if not determined(m, p)})
            top = chain[-1][0]
            if len(chain) > MAX_CALLERS:
                self.unresolved.append(f"{trail}: {', '.join(shown)} still unknown {MAX_CALLERS} callers up")
                continue
            sites = list(self.call_sites(top))
            if not sites:
                self.unresolved.append(
                    f"{trail}: {', '.join(shown)}: method or resource not known here, and no call of "
                    f"{top.name}() binds them"
                )
            for caller, source, site in sites:
                if caller is None:
                    self.unresolved.append(
                        f"{trail} <- {source.path.name}:{site.lineno}: called at import time"
                    )
                    continue
                pending.append([*chain[:-1], (top, (caller, source, site)), (caller, None)])

    def _frames(self, chain: list[tuple[Func, tuple[Func | None, Source, ast.Call] | None]]) -> list[Frame]:
        """Frames for a call chain, innermost first; each bound by the call site of the one above it."""
        frames: list[Frame] = []
        above: Frame | None = None
        for func, site in reversed(chain):
            if site is None or above is None:
                frame = Frame(func, func.source)
            else:
                frame = Frame(func, func.source, self.bind(site[2], func, above))
            frames.append(frame)
            above = frame
        return frames[::-1]

    # ---- the whole package ------------------------------------------------------------------------
    def run(self) -> Scan:
        for func, calls in self.calls.items():
            for call in calls:
                where = f"{func.source.path.name}:{call.lineno}"
                name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
                if name in TRANSPORT and func.cls != TRANSPORT_CLASS:
                    self.unresolved.append(f"{where}: {name}() is Kube's transport; call Kube.request/watch")
                    continue
                found = self.request_of(call)
                if found is None:
                    continue
                method, path, what = found
                if (func.source.path.name, func.name) in USER_NAMED:
                    self.user_named.append(where)
                    continue
                if method is None or path is None:
                    self.unresolved.append(f"{where}: {ast.unparse(call)}: {what} without a method and path")
                    continue
                try:
                    self.resolve(func, call, method, path, where)
                except Unresolved as e:
                    self.unresolved.append(f"{where}: {e}")
        for source, calls in self.module_calls.items():
            for call in calls:
                if self.request_of(call) is not None:
                    self.unresolved.append(f"{source.path.name}:{call.lineno}: an API request at import time")
        for source, tree in self.trees.items():
            self._check_client_use(source, tree)
        return self

    def _check_client_use(self, source: Source, tree: ast.Module) -> None:
        """Only the transport and its configuration come from the kubernetes client (see CLIENT_ATTRIBUTES)."""
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubernetes"):
                for alias in node.names:
                    if node.module == "kubernetes" and alias.name == "client":
                        aliases.add(alias.asname or alias.name)
                    elif alias.name not in ("config", "ApiException"):
                        self.unresolved.append(
                            f"{source.path.name}:{node.lineno}: imports {alias.name} from {node.module}: "
                            "requests must go through Kube.request/watch"
                        )
            elif isinstance(node, ast.Import) and any(a.name.startswith("kubernetes") for a in node.names):
                self.unresolved.append(
                    f"{source.path.name}:{node.lineno}: imports the kubernetes package whole"
                )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr not in CLIENT_ATTRIBUTES
            ):
                self.unresolved.append(
                    f"{source.path.name}:{node.lineno}: kubernetes client.{node.attr} makes requests this "
                    "scan cannot see; go through Kube.request/watch"
                )


def scan(sources: Iterable[Source] | None = None) -> Scan:
    """Scan `sources` (default: the whole shimshift package)."""
    return Scan(package_sources() if sources is None else sources).run()
