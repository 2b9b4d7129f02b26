"""The run directory's contract: every file name, table schema and ranking rule, and how each artifact is read
and written. Every stage talks to the others through this package only; it imports neither Ray nor Optuna.

``layout`` holds the names, schemas and ranking rules; ``models`` one trained model's folder; ``records`` the
ensemble records; ``run`` the ``RunDir`` that reads a finished search.
"""

from hpsearch.data.split import SPLIT_FILE
from hpsearch.rundir.layout import (
    BEST_FILE,
    BEST_SINGLE,
    CONFIG_FILE,
    COST_COLUMNS,
    ENSEMBLE_COLUMNS,
    ENSEMBLES_DIR,
    ENSEMBLES_FILE,
    ENV_FILE,
    EVALUATION_DIR,
    EXPERIMENT_DIR,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    MODEL_FILE,
    MODEL_FOLDER_FILES,
    OOF_DIR,
    ORIGIN_DEFAULT,
    ORIGIN_SEARCH,
    ORIGIN_WARM_START,
    PROBS_FILE,
    RECIPE_FILE,
    REFIT_DIR,
    REFIT_SUFFIX,
    REPORT_DIR,
    SEARCH_ARTIFACTS,
    STUDY_FILE,
    SUMMARY_FILE,
    SWEEPS_DIR,
    TEST_METRICS_FILE,
    TEST_SUMMARY_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_KEY_COLUMNS,
    TRIAL_RESULT_COLUMNS,
    TRIAL_STATUSES,
    TRIALS_DIR,
    TRIALS_FILE,
    TTA_SUFFIX,
    WORKERS_SUFFIX,
    check_trials_complete,
    damaged,
    feasible,
    from_elsewhere,
    parameter_columns,
    rank_models,
    rank_trials,
    read_table,
    study_url,
    write_table,
)
from hpsearch.rundir.models import (
    SavedModel,
    copy_model_folder,
    drop_stale_probs,
    epoch_oof_file,
    load_state_dict,
    load_torch_file,
    read_model_folder,
    save_model_folder,
    save_refit_folder,
    tta_probs_file,
)
from hpsearch.rundir.records import (
    RECORD_FORMAT,
    EnsembleRecord,
    Member,
    read_record,
    variant_name,
    write_record,
)
from hpsearch.rundir.run import (
    RunDir,
    holds_search,
    read_history,
    read_trials,
    update_summary,
)

__all__ = [
    "COST_COLUMNS", "ORIGIN_DEFAULT", "ORIGIN_SEARCH", "ORIGIN_WARM_START", "feasible", "from_elsewhere",
    "BEST_FILE", "BEST_SINGLE", "CONFIG_FILE", "ENSEMBLES_DIR", "ENSEMBLES_FILE", "ENSEMBLE_COLUMNS",
    "ENV_FILE", "EVALUATION_DIR", "EXPERIMENT_DIR", "EnsembleRecord", "HISTORY_COLUMNS", "HISTORY_FILE",
    "MODEL_FILE", "MODEL_FOLDER_FILES", "Member", "OOF_DIR", "PROBS_FILE", "RECIPE_FILE", "RECORD_FORMAT",
    "REFIT_DIR", "REFIT_SUFFIX", "REPORT_DIR", "RunDir", "SEARCH_ARTIFACTS", "SPLIT_FILE", "STUDY_FILE",
    "SUMMARY_FILE", "SWEEPS_DIR", "SavedModel", "TEST_METRICS_FILE", "TEST_SUMMARY_COLUMNS", "TRIALS_DIR",
    "TRIALS_FILE", "TRIAL_COLUMNS", "TRIAL_KEY_COLUMNS", "TRIAL_RESULT_COLUMNS", "TRIAL_STATUSES", "TTA_SUFFIX",
    "WORKERS_SUFFIX",
    "check_trials_complete", "copy_model_folder", "damaged", "drop_stale_probs", "epoch_oof_file", "holds_search",
    "load_state_dict", "load_torch_file", "parameter_columns", "rank_models", "rank_trials", "read_history",
    "read_model_folder", "read_record", "read_table", "read_trials", "save_model_folder", "save_refit_folder",
    "study_url", "tta_probs_file", "update_summary", "variant_name", "write_record", "write_table",
]
