"""Sli2Vol-style learned propagation (Yeung, Namburete and Xie, MICCAI 2021), reimplemented.

edges.py     edge-profile input (the information bottleneck)
network.py   full-resolution feature net, local softmax affinity, affinity-weighted copy
sparse_carry.py  the same copy for a mask, scoring only tiles near class boundaries (inference)
verify.py    image check of each propagated mask, and the step confidence
train.py     self-supervised training (reconstruct slice i+k from slice i)
model_io.py  model files: format version, architecture config, weights; the shipped default
propagator.py  ties them together behind ``propagate``
"""

from slicebudget.propagation.sli2vol.model_io import FORMAT_VERSION, default_model_path, load_model, save_model
from slicebudget.propagation.sli2vol.network import Sli2VolConfig
from slicebudget.propagation.sli2vol.propagator import Sli2VolPropagator
from slicebudget.propagation.sli2vol.train import TrainingSettings, train_feature_net

__all__ = [
    "FORMAT_VERSION",
    "Sli2VolConfig",
    "Sli2VolPropagator",
    "TrainingSettings",
    "default_model_path",
    "load_model",
    "save_model",
    "train_feature_net",
]
