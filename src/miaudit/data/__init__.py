"""Datasets (by name or from the user's files), record splits and reference-model masks."""
from miaudit.data.dataset import Dataset
from miaudit.data.registry import DATASET_NAMES, DatasetInfo, list_datasets, load_dataset
from miaudit.data.splits import Splits, balanced_masks, keep_classes, make_splits, pool_splits

__all__ = ["DATASET_NAMES", "Dataset", "DatasetInfo", "Splits", "balanced_masks", "keep_classes",
           "list_datasets", "load_dataset", "make_splits", "pool_splits"]
