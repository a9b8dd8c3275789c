"""The commands about versions kept on disk: pinning notebooks to a version (``pin``, ``unpin``),
removing the versions nothing keeps (``gc``), disk use (``du``) and the package cache
(``clean``). Standard library only at the top (see :mod:`.commands`)."""

from __future__ import annotations

from .render import Result
from .targets import env_of_prefix, scope_of, target_env


def cmd_pin(service, args, progress) -> Result:
    from ..core.bodies import parse_version

    version = parse_version(args.version) if args.version else None
    if args.notebook and args.check:
        info = service.pins.check_notebook(args.notebook)
        return Result("pin", info, f"✓ {args.notebook} runs on {_pinned(info)}")
    if args.notebook:
        scope = scope_of(args) if args.env else None
        info = service.pins.pin_notebook(args.notebook, scope, args.env, version)
        return Result("pin", info, f"✓ pinned {args.notebook} to {_pinned(info)}")
    if not args.prefix and not args.env:
        raise _usage("name the notebook to pin (NOTEBOOK)")
    scope, name = (scope_of(args), args.env) if args.env else target_env(service, args)
    if version is None and args.prefix:  # %envmgr pin: the version this kernel runs
        version = service.store(scope).version_at(args.prefix)
    info = service.pins.pin(scope, name, version)
    return Result("pin", info, f"✓ this notebook is pinned to {_pinned(info)} (save it to keep)")


def cmd_unpin(service, args, progress) -> Result:
    if args.notebook:
        info = service.pins.unpin_notebook(args.notebook)
        return Result("pin", info, f"✓ unpinned {args.notebook}: it runs on {info['kernel_name']}")
    from ..core.errors import ValidationError
    from ..core.kernels import kernel_name

    found = env_of_prefix(service, args.prefix) if args.prefix else None
    if found is None:
        raise ValidationError("name the notebook to unpin (NOTEBOOK)", field="notebook")
    scope, name = found
    info = {"scope": scope, "name": name, "kernel_name": kernel_name(scope, name), "unpin": True}
    return Result("pin", info, f"✓ this notebook runs on {scope}/{name}'s version in use again")


def _pinned(info: dict) -> str:
    return f"{info['scope']}/{info['name']} v{info['version']} (kernel {info['kernel_name']})"


def _usage(message: str):
    from ..core.errors import ValidationError

    return ValidationError(message, field="notebook")


def cmd_gc(service, args, progress) -> Result:
    scope = "shared" if args.shared else "local" if args.local else None
    done = service.retention.collect(scope, dry_run=args.dry_run)
    data = {"removed": done.removed, "kept_for_kernels": done.kept_for_kernels}
    count = sum(len(v) for v in done.removed.values())
    verb = "would remove" if args.dry_run else "removed"
    lines = [f"{key} {', '.join(names)}" for key, names in sorted(done.removed.items())]
    lines += [
        f"{key} {', '.join(names)} (kept: running kernels use them)"
        for key, names in sorted(done.kept_for_kernels.items())
    ]
    message = f"✓ {verb} {count} version director{'y' if count == 1 else 'ies'}"
    return Result("message", data, "\n".join([message, *lines]))


def cmd_du(service, args, progress) -> Result:
    from .render import size_text

    scope = "shared" if args.shared else "local" if args.local else None
    data = service.disk.report(scope)
    lines = []
    for store in data["stores"]:
        lines.append(f"{store['scope']} store {store['root']}: {size_text(store['bytes'])}")
        for name, size in sorted(store["environments"].items()):
            lines.append(f"  {name}: {size_text(size)}")
    return Result("message", data, "\n".join(lines))


def cmd_clean(service, args, progress) -> Result:
    from .render import size_text

    data = service.disk.clean(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    count = len(data["removed"])
    lines = [
        f"✓ {verb} {count} cached package entr{'y' if count == 1 else 'ies'} from "
        f"{data['pkgs_dir']}, freeing {size_text(data['freed_bytes'])}",
        *(f"  {entry}" for entry in data["removed"]),
    ]
    shared = data.get("shared")
    if shared is not None:
        count = len(shared["removed"])
        lines += [
            f"✓ {verb} {count} cached package entr{'y' if count == 1 else 'ies'} from "
            f"{shared['pkgs_dir']}, freeing {size_text(shared['freed_bytes'])}",
            *(f"  {entry}" for entry in shared["removed"]),
        ]
    return Result("message", data, "\n".join(lines))


VERSION_COMMANDS = {
    "pin": cmd_pin,
    "unpin": cmd_unpin,
    "gc": cmd_gc,
    "du": cmd_du,
    "clean": cmd_clean,
}
