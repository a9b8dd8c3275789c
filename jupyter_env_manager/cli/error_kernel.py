"""A kernel that only says why the notebook's pin cannot be honoured.

The launcher (:mod:`..core.launch`) starts it in place of a pinned version it cannot run (the
environment is gone, the lock hash does not match, the packages are no longer in the channel):
the notebook opens, and every cell run shows the reason as an error, instead of a kernel that
dies with the reason in a server log, or a silent fallback to another environment.

``python -m jupyter_env_manager.cli.error_kernel --message TEXT -f CONNECTION_FILE``
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ipykernel.kernelapp import IPKernelApp
    from ipykernel.kernelbase import Kernel

    parser = argparse.ArgumentParser(prog="jupyter_env_manager.cli.error_kernel")
    parser.add_argument("--message", required=True)
    parser.add_argument("-f", dest="connection_file")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    message = args.message

    class PinErrorKernel(Kernel):
        implementation = "jupyter_env_manager-pin"
        implementation_version = "1"
        language_info = {  # noqa: RUF012 (ipykernel's class attribute)
            "name": "python",
            "mimetype": "text/x-python",
            "file_extension": ".py",
        }
        banner = f"This notebook's pin cannot be honoured: {message}"

        def do_execute(
            self,
            code,
            silent,
            store_history=True,
            user_expressions=None,
            allow_stdin=False,
            **kwargs,
        ):
            content = {
                "ename": "PinNotHonoured",
                "evalue": message,
                "traceback": [f"PinNotHonoured: {message}"],
            }
            if not silent:
                self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}

    app_argv = ["-f", args.connection_file] if args.connection_file else []
    IPKernelApp.launch_instance(argv=app_argv, kernel_class=PinErrorKernel)


if __name__ == "__main__":
    main()
