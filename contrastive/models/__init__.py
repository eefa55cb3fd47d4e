"""Flax linen encoders whose parameters and activations carry logical axis names.

Names used (mapped to mesh axes by ``contrastive.parallel.rules``):
  params:      embed, mlp, heads, kv, vocab, length, conv_in, conv_out, proj, classes
  activations: batch, length, embed, mlp, heads, kv, height, width, conv_out, proj, classes
"""
from contrastive.models.captioner import Captioner, caption_cross_entropy, make_captioner
from contrastive.models.dual import DualEncoder, SiameseEncoder
from contrastive.models.heads import LinearHead, MLPHead, Prototypes, l2_normalize
from contrastive.models.resnet import RESNET_SIZES, ResNet, resnet
from contrastive.models.text import TEXT_SIZES, TextTransformer, text_transformer
from contrastive.models.transformer import EncoderBlock, MultiHeadAttention, Transformer
from contrastive.models.vit import VIT_SIZES, MAPHead, ViT, vit

__all__ = [
    "Captioner", "caption_cross_entropy", "make_captioner",
    "DualEncoder", "SiameseEncoder", "LinearHead", "MLPHead", "Prototypes", "l2_normalize",
    "RESNET_SIZES", "ResNet", "resnet", "TEXT_SIZES", "TextTransformer", "text_transformer",
    "EncoderBlock", "MultiHeadAttention", "Transformer", "VIT_SIZES", "MAPHead", "ViT", "vit",
]
