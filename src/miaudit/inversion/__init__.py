"""Model inversion (MIFace, Fredrikson et al. 2015): what a class looks like to a trained model."""
from miaudit.inversion.miface import Inversion, Standardize, as_torch_module, invert

__all__ = ["Inversion", "Standardize", "as_torch_module", "invert"]
