"""Datasets: sources, stratified splits, the decoded cache and batched augmentation."""

from hpsearch.data.augment import BatchAugment
from hpsearch.data.config import DataConfig
from hpsearch.data.dataset import ImageArrays, TestSplitKey, TrialData, load_subset, prepare_split, prepare_trial_data
from hpsearch.data.sources import Listing, make_source
from hpsearch.data.split import load_split, stratified_split

__all__ = [
    "BatchAugment", "DataConfig", "ImageArrays", "Listing", "TestSplitKey", "TrialData", "load_split", "load_subset",
    "make_source", "prepare_split", "prepare_trial_data", "stratified_split",
]
