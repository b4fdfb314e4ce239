"""The demo's independent judge: a category classifier trained on real catalog images plus the
analytic colour reader. It never sees generated images in training and shares no weights with
any reward, so reward hacking shows up as a gap between reward and judge."""
