"""How a running study reports itself: silently (library use, tests) or with a rich progress bar."""

from __future__ import annotations


def describe_run(record: dict) -> str:
    """A short human name for a run, e.g. ``unet-resnet18 2D rho=0.1 s=0.5 random #1``."""
    if record.get("is_dense_baseline"):
        what = "dense baseline"
    else:
        what = f"rho={record['density']:g} s={record['volume_fraction']:g} {record['policy']}"
        if record.get("interpolation", "off") != "off":
            what += f" +{record['interpolation']}"
    return f"{record['model']} {record['dims']}D {what} #{record['repeat'] + 1}"


class SilentView:
    """Collects nothing and prints nothing."""

    def status(self, message: str) -> None:
        pass

    def estimate(self, estimate) -> None:
        """The study's wall-time estimate (slicebudget.study.estimate), told before the runs start."""

    def begin(self, total: int, done: int, failed: int) -> None:
        pass

    def started(self, record: dict) -> None:
        pass

    def progress(self, record: dict, info: dict) -> None:
        pass

    def finished(self, record: dict, outcome) -> None:
        pass

    def end(self) -> None:
        pass


def eta_seconds(elapsed: float, finished_now: int, remaining: int, estimate: float | None) -> float | None:
    """Seconds left: the pace of the runs finished in this session once there is one, before that the
    estimate less the time spent (None when there is neither)."""
    if remaining <= 0:
        return 0.0
    if finished_now > 0:
        return elapsed / finished_now * remaining
    if estimate is not None:
        return max(0.0, estimate - elapsed)
    return None


class RichView(SilentView):
    """A rich progress bar: runs done of total, elapsed, ETA, and what the current run is doing."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress = None
        self._task = None
        self._current: dict[str, str] = {}
        self._estimate: float | None = None
        self._counted_before = 0

    def status(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")

    def estimate(self, estimate) -> None:
        self._estimate = estimate.seconds
        self.console.print(estimate.describe())

    def _eta_text(self, task):
        from rich.text import Text

        from slicebudget.study.estimate import clock

        seconds = eta_seconds(task.elapsed or 0.0, int(task.completed) - self._counted_before,
                              int(task.total - task.completed), self._estimate)
        return Text("ETA " + ("-:--" if seconds is None else clock(seconds)), style="progress.remaining")

    def begin(self, total: int, done: int, failed: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, RenderableColumn, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn)

        if done or failed:
            self.console.print(f"{done} of {total} runs already done, {failed} failed earlier")
        view = self

        class EtaColumn(RenderableColumn):
            def render(self, task):
                return view._eta_text(task)

        self._progress = Progress(
            SpinnerColumn(), TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            EtaColumn(), TextColumn("{task.fields[current]}"), console=self.console, transient=False,
        )
        self._progress.start()
        # Already-finished runs count as done but not in the pace, so the ETA is honest.
        self._counted_before = done + failed
        self._task = self._progress.add_task("runs", total=total, completed=done + failed, current="")

    def _show(self) -> None:
        text = " | ".join(self._current.values())
        self._progress.update(self._task, current=text[:90])

    def started(self, record: dict) -> None:
        self._current[record["run_id"]] = describe_run(record)
        self._show()

    def progress(self, record: dict, info: dict) -> None:
        stage = info.get("stage", "")
        if stage == "train" and "iteration" in info:
            detail = f"train {info['iteration']}/{info['iterations']}"
        elif stage == "infer":
            detail = f"infer {info.get('case')}/{info.get('cases')}"
        else:
            detail = stage
        self._current[record["run_id"]] = f"{describe_run(record)}: {detail}"
        self._show()

    def finished(self, record: dict, outcome) -> None:
        self._current.pop(record["run_id"], None)
        if not outcome.ok:
            self._progress.console.print(f"[red]failed[/red] {describe_run(record)}: {outcome.error}")
        self._progress.advance(self._task)
        self._show()

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
