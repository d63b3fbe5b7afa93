"""A plan's runs in the result store: one run per scenario, its id fixed when the plan starts,
each finished trial in the run's journal before the next trial begins (results/journal.py),
and the document saved when the plan ends (then the journal goes).

    runs = PlanRuns(runner)                        # at the start of PlanRunner.run()
    runs.trial_done(slot.scenario, index, recs)    # after each trial; StoreError: stop
    doc, path = runs.save(scenario, recs, executed, complete)   # at the end, per scenario
    runs.close()                                   # journals of failed saves stay
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from engine import __version__ as ENGINE_VERSION
from gpubench.run_identity import git_commit, scenario_record
from results.document import SessionRecord, archive_lines, build_document, new_run_id, utc_now
from results.journal import RunJournals
from results.schema import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from scenarios.config import ScenarioConfig
    from gpubench.runner import PlanRunner
    from gpubench.trial_order import TrialSlot


class PlanRuns:
    def __init__(self, runner: "PlanRunner") -> None:
        self.runner = runner
        self.created = utc_now()
        self.commit = git_commit()
        self.records = {s.name: scenario_record(s, runner.config) for s in runner.scenarios}
        self.run_ids = {s.name: new_run_id(s.name, self.created) for s in runner.scenarios}
        self.stopped: str | None = None       # why the plan stopped early (a journal failure)
        self.journals = RunJournals(runner.store, self.run_ids, {
            s.name: {"created": self.created, "scenario": self.records[s.name],
                     "group": self.group(()), "label": runner.options.label,
                     "notes": runner.options.notes, "tool_version": ENGINE_VERSION,
                     "git_commit": self.commit, "trials_planned": runner.trials}
            for s in runner.scenarios})

    def group(self, executed: Sequence["TrialSlot"]) -> dict:
        # `order` is the slots that ran (a journal's header: none yet); the rest of the plan
        # follows from seed, scenarios and trials (gpubench.trial_order), `planned` counts it
        r = self.runner
        return {"id": r.group_id, "seed": r.seed, "scenarios": [s.name for s in r.scenarios],
                "trials": r.trials, "order": [[s.scenario, s.trial] for s in executed],
                "executed": len(executed), "planned": len(r.order),
                "engine_args": list(r.args)}

    def trial_done(self, scenario: str, index: int, records: Sequence[SessionRecord]) -> None:
        """The trial is on disk when this returns; StoreError (one line) when it could not
        be (a full disk): the plan should stop, what was measured is still in memory."""
        try:
            self.journals.append(scenario, index, records)
        except StoreError as exc:
            self.stopped = str(exc)
            raise

    def drop(self, scenario: str) -> None:
        """Nothing of this scenario is worth a document: no journal either."""
        self.journals.saved(scenario)

    def save(self, scenario: "ScenarioConfig", recs: list[SessionRecord],
             executed: Sequence["TrialSlot"], complete: bool) -> tuple[dict, Path]:
        """Build and save the scenario's document; StoreError says where the trials are
        kept when the save fails."""
        r = self.runner
        done = sum(1 for s in executed if s.scenario == scenario.name)
        reason = None
        if not complete:
            reason = (f"stopped after {done} of {r.trials} trials: {self.stopped}"
                      if self.stopped else f"interrupted after {done} of {r.trials} trials")
        doc = build_document(recs, self.records[scenario.name],
                             run_id=self.run_ids[scenario.name], created=self.created,
                             tool_version=ENGINE_VERSION, git_commit=self.commit,
                             group=self.group(executed), label=r.options.label,
                             notes=r.options.notes, complete=complete,
                             incomplete_reason=reason)
        try:
            path = r.store.save(doc, archive_lines(recs))
        except StoreError as exc:
            if not self.journals.has(scenario.name):
                raise
            raise StoreError(f"{exc}; its {done} finished trial(s) stay in its journal: "
                             f"`gpubench recover {doc['id']}` saves them") from None
        self.journals.saved(scenario.name)
        return doc, path

    def close(self) -> None:
        self.journals.close()
