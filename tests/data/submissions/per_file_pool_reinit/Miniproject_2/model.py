from .others.module import Module
from .others.conv2d import Conv2d
from .others.convtranspose2d import ConvTranspose2d
from .others.upsampling import Upsampling
from .others.maxpool2d import MaxPool2d
from .others.relu import ReLU
from .others.sigmoid import Sigmoid
from .others.mse import MSE
from .others.sequential import Sequential
from .others.sgd import SGD


class Model:
    def __init__(self):
        self.net = Sequential(Conv2d(3, 32, 3, stride=2, padding=1), ReLU(), Conv2d(32, 64, 3, stride=2, padding=1),
                              ReLU(), Upsampling(2), Conv2d(64, 32, 3, padding=1), ReLU(), Upsampling(2),
                              Conv2d(32, 3, 3, padding=1), Sigmoid())
        self.loss = MSE()
        self.optimizer = SGD(self.net, lr=0.7)

    def train(self, train_input, train_target, num_epochs):
        x_all, y_all = train_input / 255.0, train_target / 255.0
        for _ in range(num_epochs):
            for b in range(0, x_all.shape[0], 64):
                self.optimizer.zero_grad()
                self.loss.forward(self.net.forward(x_all[b:b + 64]), y_all[b:b + 64])
                self.net.backward(self.loss.backward())
                self.optimizer.step()

    def predict(self, test_input):
        return self.net.forward(test_input / 255.0) * 255.0
