"""File formats: the saved model (serialize.py: npz and safetensors
containers), the safetensors codec (safetensors.py) and the PNG writer of the
command line (png.py). Each reads and writes plain arrays; the model is
reached through its public methods and vaefast/_internals.py."""
