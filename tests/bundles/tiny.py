"""Tiny model settings shared by the bundle tests."""

ENCODER = {"arch": "vit_tiny", "img_size": 32, "patch_size": 8, "hidden_size": 32, "num_layers": 2, "num_heads": 2}
AFIRE = {"num_prototypes": 8, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "decoder_dim": 32, "decoder_depth": 1,
         "decoder_heads": 2}  # fmt: skip
# the same encoder as bundle config overrides, on the CPU
BUNDLE_OVERRIDES = {
    "device": "$torch.device('cpu')",
    "image_size": 32,
    "patch_size": 8,
    "arch": "vit_tiny",
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "mlp_dim": 64,
    "batch_size": 4,
    "num_workers": 0,
}
