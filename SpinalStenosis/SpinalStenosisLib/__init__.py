"""SpinalStenosisLib: the Qt-free engine of the SpinalStenosis 3D Slicer extension."""
__version__ = "0.1.0"
