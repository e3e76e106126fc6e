"""trainer-core alone: callbacks, state and the plugin errors work without torch."""

import importlib.util
import json
import tempfile
from pathlib import Path

import trainer_core as tc

assert importlib.util.find_spec("torch") is None, "trainer-core must not pull in torch"

seen = []


class Recorder(tc.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        seen.append(state.global_step)
        control.should_save = True


state = tc.TrainerState(global_step=3, max_steps=10)
control = tc.TrainerControl()
handler = tc.CallbackHandler([Recorder(), tc.EarlyStoppingCallback()], None, None, None, None)
handler.on_step_end(None, state, control)
assert seen == [3] and control.should_save
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "trainer_state.json"
    state.save_to_json(str(path))
    assert tc.TrainerState.load_from_json(str(path)).global_step == 3
    json.loads(path.read_text())

try:
    tc.load_plugin(tc.REPORT_TO_GROUP, "tensorboard")
except tc.UnknownPluginError as error:
    assert "pip install 'trainer-reporting[tensorboard]'" in str(error), error
else:
    raise AssertionError("no reporter is installed: loading one must fail")
print("trainer-core: ok")
