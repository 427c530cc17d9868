from pathlib import Path
import torch
from .others.conv2d import Conv2d
from .others.transposeconv2d import TransposeConv2d
from .others.upsampling import NearestUpsampling
from .others.relu import ReLU
from .others.sigmoid import Sigmoid
from .others.tanh import Tanh
from .others.mse import MSE
from .others.sequential import Sequential
from .others.optimizer import Optimizer


class Model():
    def __init__(self):
        self.model = Sequential(Conv2d(3, 48, 2, stride=2), ReLU(), Conv2d(48, 48, 2, stride=2), ReLU(),
                                TransposeConv2d(48, 48, 2, stride=2), ReLU(), TransposeConv2d(48, 3, 2, stride=2),
                                Sigmoid())
        self.criterion = MSE()
        self.optimizer = Optimizer(self.model, lr=1.)
        self.batch_size = 32

    def load_pretrained_model(self):
        params, _ = self.model.param()
        for p, q in zip(params, torch.load(Path(__file__).parent / "bestmodel.pth")):
            p.copy_(q)

    def train(self, train_input, train_target, num_epochs):
        for epoch in range(num_epochs):
            for b in range(0, len(train_input), self.batch_size):
                x = train_input[b:b + self.batch_size] / 255.
                y = train_target[b:b + self.batch_size] / 255.
                self.optimizer.zero_grad()
                self.criterion.forward(self.model.forward(x), y)
                self.model.backward(self.criterion.backward())
                self.optimizer.step()

    def predict(self, test_input):
        return self.model.forward(test_input / 255.) * 255.
