"""``kcompress compress``: the pipeline on your model, with settings from a config file."""

import dataclasses
import json
import os
import zipfile

from kcompress._errors import expected_error
from kcompress.cli import _flags, _model, _paths, _pipeline
from kcompress.cli._command import Command
from kcompress.cli._errors import UsageError, one_line

_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def _define(flag_values):
    _flags.define_string(
        flag_values,
        "model",
        None,
        "A .keras classifier to compress: a keras-hub text classifier saved with its preprocessor (for texts), or "
        "a Keras image classifier (for a folder of images). Overrides the config's `model`. Default: the config's "
        "`model`.",
    )
    _flags.define_string(
        flag_values,
        "data",
        None,
        "The examples: a CSV file with text and label columns, or a folder of images with one subfolder per class "
        "(photos/cat/1.jpg, photos/dog/2.png, ...). Overrides the config's `data`. Default: the config's `data`.",
    )
    _flags.define_string(flag_values, "config", None, "Pipeline settings, a .json or .yaml file (PipelineConfig).")
    _flags.define_string(
        flag_values, "out", None, "Run folder: models, report.md, report.png. An interrupted run resumes from it."
    )
    _flags.define_string(
        flag_values,
        "job-addresses",
        None,
        "Train over several processes (KERAS_BACKEND=jax only; give all three of --job-addresses, --num-processes "
        "and --process-id): host:port of process 0, or every process' host:port, comma-separated. Every process "
        "runs the same command on a shared --out; only process 0 writes it.",
    )
    _flags.define_int(flag_values, "num-processes", None, "How many processes train together.", minimum=1)
    _flags.define_int(
        flag_values, "process-id", None, "This process' index, from 0 to --num-processes - 1.", minimum=0
    )


def _join_processes(args):
    """Joins this process to the group the three flags describe (before any model is built), if they are given."""
    given = {
        "--job-addresses": args.job_addresses,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    if all(value is None for value in given.values()):
        return
    missing = [name for name, value in given.items() if value is None]
    if missing:
        expectation = "all of --job-addresses, --num-processes and --process-id"
        raise UsageError(str(expected_error(expectation, missing=", ".join(missing))))
    _flags.check_addresses("--job-addresses", args.job_addresses)
    if args.process_id >= args.num_processes:
        expectation = f"--process-id in [0, {args.num_processes}) for --num-processes={args.num_processes}"
        raise UsageError(str(expected_error(expectation, **{"--process-id": args.process_id})))
    from kcompress import distribution

    try:
        distribution.join_processes(args.job_addresses, args.num_processes, args.process_id)
    except ValueError as error:  # The TensorFlow backend: its "Expected the JAX backend ..." message.
        raise UsageError(one_line(error)) from None


def _execute(args, positional):
    _join_processes(args)
    model = _paths.keras_file("--model", args.model, suffixes=(".keras",)) if args.model else None
    config_path = _paths.existing_file("--config", args.config, suffixes=_CONFIG_SUFFIXES)
    out = _paths.output_dir("--out", args.out)
    pipeline = _pipeline.load()
    try:
        config = pipeline.PipelineConfig.from_file(config_path)
    except ValueError as error:  # The config's own "Expected ..." message, e.g. a bad sparsity.
        raise UsageError(f"--config {config_path}: {one_line(error)}") from None
    except Exception as error:  # Whatever else stops the file from loading is a bad --config too.
        raise UsageError(
            f"{expected_error('--config to be a valid pipeline config', **{'--config': config_path})}"
            f" ({type(error).__name__}: {one_line(error)})"
        ) from None
    if model is not None:
        config = dataclasses.replace(config, model=model)
    if args.data:
        config = dataclasses.replace(config, data=args.data)
    try:  # Bad data and a wrong num_classes are found here, before any model is built.
        if config.model != "minilm" and model is None:  # A --model was checked above.
            _paths.keras_file("model", config.model, suffixes=(".keras",))
        data = pipeline.load_data(config)
        if isinstance(data, pipeline.ImageData):
            _check_image_classifier(config, len(data.class_names), "--model" if model else "model")
        elif config.model != "minilm":
            _check_saved_classes(config, len(data.class_names))
    except (UsageError, ValueError) as error:
        raise UsageError(f"--config {config_path}: {one_line(error)}") from None
    if _is_chief():  # Over several processes, only process 0 writes the run folder.
        os.makedirs(out, exist_ok=True)
    _pipeline.show(pipeline.run_pipeline(config, out, verbose=1))


def _is_chief():
    from kcompress import distribution  # Keras is loaded by now: no start-up cost.

    return distribution.is_chief()


def _check_image_classifier(config, num_classes, flag):
    """Raises unless the model takes images and has one output per class folder (it is loaded: images need it)."""
    from kcompress.pipeline import images, stages  # The pipeline is loaded by now: no start-up cost.

    model = _model.load_keras_model(flag, config.model)
    images.image_input(model, config)
    stages.check_model_outputs(model, num_classes, config)


def _check_saved_classes(config, num_classes):
    """Raises if a saved keras-hub classifier's ``num_classes`` (read from its config.json) is not the data's."""
    try:
        with zipfile.ZipFile(config.model) as archive:
            saved = json.loads(archive.read("config.json")).get("config", {}).get("num_classes")
    except (KeyError, OSError, ValueError, AttributeError, zipfile.BadZipFile):
        return  # The pipeline checks the loaded model's outputs too.
    if isinstance(saved, int):
        from kcompress.pipeline.data import check_outputs  # The pipeline is loaded by now: no start-up cost.

        check_outputs(saved, num_classes, config)


COMMAND = Command(
    name="compress",
    summary="Run the pipeline (distill, prune, QAT, int8 export, verify) on a model with a config file.",
    description=(
        "Runs kcompress.pipeline on a model: the stages and their settings come from --config (see "
        "kcompress.pipeline.PipelineConfig); each stage writes its output to --out, so an interrupted run resumes "
        "where it stopped. Prints the report table and the paths of the .tflite, report.md and report.png. "
        "A CSV of texts takes a keras-hub text classifier; a folder of images (one subfolder per class) takes a "
        "Keras image classifier, and skips the text-only stages (distillation, structured pruning)."
    ),
    define=_define,
    execute=_execute,
    required=("config", "out"),
    examples=(
        "kcompress compress --model m.keras --config c.json --out run/",
        "kcompress compress --model cnn.keras --data photos/ --config c.json --out run/",
        "KERAS_BACKEND=jax kcompress compress --config c.json --out shared/run --job-addresses 10.0.0.1:1234 "
        "--num-processes 2 --process-id 0",
    ),
)
