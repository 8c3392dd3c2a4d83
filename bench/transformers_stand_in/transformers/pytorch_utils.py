from torch import nn


class Conv1D(nn.Module):
    """Only an isinstance target for peft (GPT-2's layer; the UNet has none)."""
