"""The list of moments at which the training loop hands control to callbacks.

One enum is the single source of truth for the event names: ``TrainerCallback`` has one
method per member, ``CallbackHandler`` has one dispatcher per member, and a test keeps
the three in step. Reading the enum's docstring tells a callback author exactly when
each hook runs without reading the loop.
"""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """Every event a callback can react to, named after the callback method it calls.

    A member compares and hashes equal to its string value (``Event.ON_LOG == "on_log"``),
    so either spelling works wherever an event is expected. Where each event fires, as
    the trainer runs it (one "step" is one optimizer update; with gradient accumulation a
    step spans several batches, the extra ones ending in ``on_substep_end``)::

        trainer = Trainer(...)
        # <on_init_end>

        trainer.train():
            # <on_train_begin>
            for epoch in epochs:
                # <on_epoch_begin>
                for update in updates_in_epoch:
                    # <on_step_begin>
                    for batch in update.batches:
                        loss = forward(batch); backward(loss)
                        if batch is not update.last_batch:
                            # <on_substep_end>
                    clip_gradients()
                    # <on_pre_optimizer_step>
                    optimizer.step()
                    # <on_optimizer_step>
                    scheduler.step(); optimizer.zero_grad(); state.global_step += 1
                    # <on_step_end>       (DefaultFlowCallback sets should_log/evaluate/save)
                    maybe_log_evaluate_save()   # see below
                    if control.should_epoch_stop or control.should_training_stop:
                        break
                # <on_epoch_end>      (DefaultFlowCallback sets the "epoch" switches)
                maybe_log_evaluate_save()
                if control.should_training_stop:
                    break
            # <on_train_end>

        maybe_log_evaluate_save():
            if control.should_log:
                trainer.log(logs)               # -> <on_log>
            if control.should_evaluate:
                trainer.evaluate()              # -> <on_evaluate>
            if control.should_save:
                save_checkpoint()
                # <on_save>

        trainer.evaluate():
            for batch in eval_dataloader:
                prediction_step(batch)
                # <on_prediction_step>
            trainer.log(metrics)                # -> <on_log>
            # <on_evaluate>

        trainer.predict():
            for batch in test_dataloader:
                prediction_step(batch)
                # <on_prediction_step>
            # <on_predict>

        trainer.push_to_hub():
            # <on_push_begin>
            upload(output_dir)
    """

    ON_INIT_END = "on_init_end"
    ON_TRAIN_BEGIN = "on_train_begin"
    ON_TRAIN_END = "on_train_end"
    ON_EPOCH_BEGIN = "on_epoch_begin"
    ON_EPOCH_END = "on_epoch_end"
    ON_STEP_BEGIN = "on_step_begin"
    ON_PRE_OPTIMIZER_STEP = "on_pre_optimizer_step"
    ON_OPTIMIZER_STEP = "on_optimizer_step"
    ON_SUBSTEP_END = "on_substep_end"
    ON_STEP_END = "on_step_end"
    ON_EVALUATE = "on_evaluate"
    ON_PREDICT = "on_predict"
    ON_SAVE = "on_save"
    ON_LOG = "on_log"
    ON_PREDICTION_STEP = "on_prediction_step"
    ON_PUSH_BEGIN = "on_push_begin"

    def __str__(self) -> str:
        """Return the method name, the same on every Python version."""
        return self.value
